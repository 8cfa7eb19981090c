// Loading a model shipped as an app asset. Android-only (android.content): built by Gradle,
// not by the JVM test.

package ai.chaya

import android.content.Context
import java.io.File
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import uniffi.chaya.LoadOptions

/**
 * Loads the model file shipped as asset [name]. The asset is copied once (again after an app
 * update) to no-backup storage and loaded from there memory-mapped, so the weights never pass
 * through the Java heap. To load the bytes instead: `load(context.assets.open(name).use { it.readBytes() })`.
 */
suspend fun ChayaModel.Companion.loadAsset(
    context: Context,
    name: String,
    options: LoadOptions = phoneLoadOptions(),
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
): ChayaModel {
    val file = withContext(dispatcher) { copyAsset(context, name) }
    return load(file.path, options, dispatcher)
}

/** The asset's copy in no-backup storage, made or refreshed when older than the installed app. */
private fun copyAsset(context: Context, name: String): File {
    val target = File(context.noBackupFilesDir, "chaya/$name")
    val installed = context.packageManager.getPackageInfo(context.packageName, 0).lastUpdateTime
    if (target.isFile && target.lastModified() >= installed) return target
    target.parentFile?.mkdirs()
    val partial = File(target.path + ".partial")
    context.assets.open(name).use { input -> partial.outputStream().use { input.copyTo(it) } }
    check(partial.renameTo(target)) { "cannot move $partial to $target" }
    return target
}
