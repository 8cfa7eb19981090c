// Stand-ins for android.content.pm.PackageManager and PackageInfo.

package android.content.pm

class PackageInfo {
    @JvmField var lastUpdateTime: Long = 0
}

abstract class PackageManager {
    abstract fun getPackageInfo(packageName: String, flags: Int): PackageInfo
}
