// Stand-in for android.content.Context: the members Assets.kt uses, so it compiles and runs on
// the JVM (tests/mobile/kotlin.sh). Not shipped.

package android.content

import android.content.pm.PackageManager
import android.content.res.AssetManager
import java.io.File

abstract class Context {
    abstract val noBackupFilesDir: File
    abstract val packageManager: PackageManager
    abstract val packageName: String
    abstract val assets: AssetManager
}
