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
 * through the Java heap (see [loadAssetBytes] for the alternative).
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

/**
 * Loads the model file shipped as asset [name] from its bytes: no copy on storage, but the whole
 * file passes through the Java heap and stays in native memory (not memory-mapped).
 */
suspend fun ChayaModel.Companion.loadAssetBytes(
    context: Context,
    name: String,
    options: LoadOptions = phoneLoadOptions(),
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
): ChayaModel {
    val bytes = withContext(dispatcher) { context.assets.open(name).use { it.readBytes() } }
    return load(bytes, options, dispatcher)
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
