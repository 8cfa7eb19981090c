// Loading a model shipped as an app asset. Built by Gradle; compiled and tested on the JVM by
// tests/mobile/kotlin.sh against stand-ins for the few android.content classes it uses.

package ai.chaya

import android.content.Context
import java.io.File
import java.io.IOException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import uniffi.chaya.LoadOptions

/**
 * Loads the model file shipped as asset [name]. The asset is copied once (again after an app
 * update) to no-backup storage and loaded from there memory-mapped, so the weights never pass
 * through the Java heap (see [loadAssetBytes] for the alternative). [options] default to
 * [phoneLoadOptions]. Besides [uniffi.chaya.ChayaException], throws the [IOException] of a
 * failed copy (a missing asset, a full disk).
 */
suspend fun ChayaModel.Companion.loadAsset(
    context: Context,
    name: String,
    options: LoadOptions? = null,
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
): ChayaModel {
    val file = withContext(dispatcher) { copyAsset(context, name) }
    return load(file.path, options, dispatcher)
}

/**
 * Loads the model file shipped as asset [name] from its bytes: no copy on storage, but the whole
 * file passes through the Java heap (twice its size at once while it is read, then a native copy
 * of its weights): for small models; prefer [loadAsset] on phones.
 */
suspend fun ChayaModel.Companion.loadAssetBytes(
    context: Context,
    name: String,
    options: LoadOptions? = null,
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
): ChayaModel {
    val bytes = withContext(dispatcher) { context.assets.open(name).use { it.readBytes() } }
    return load(bytes, options, dispatcher)
}

/** Serializes asset copies within the process: two loads of one asset must not interleave. */
private val copyLock = Any()

/**
 * The asset's copy in no-backup storage, made or refreshed when older than the installed app or
 * of the wrong size (a copy cut short). Written to a unique temporary file, synced, then renamed,
 * so a crash or a concurrent copy never leaves a partial file under the final name.
 */
internal fun copyAsset(context: Context, name: String): File = synchronized(copyLock) {
    val target = File(context.noBackupFilesDir, "chaya/$name")
    val installed = context.packageManager.getPackageInfo(context.packageName, 0).lastUpdateTime
    val size = assetSize(context, name)
    val dir = checkNotNull(target.parentFile).apply { mkdirs() }
    removeStaleCopies(dir, target.name)
    val current = target.isFile && target.lastModified() >= installed &&
        (size == null || target.length() == size)
    if (current) return target
    // "$name.copy<random>.partial": a prefix of 3 characters at least, as createTempFile wants.
    val partial = File.createTempFile("${target.name}.copy", ".partial", dir)
    try {
        context.assets.open(name).use { input ->
            partial.outputStream().use { output ->
                input.copyTo(output)
                output.fd.sync()
            }
        }
        if (!partial.renameTo(target)) throw IOException("cannot move $partial to $target")
    } finally {
        partial.delete()
    }
    target
}

/** How long a temporary copy goes unmodified before it counts as left by a killed process. */
internal const val STALE_COPY_MS = 10 * 60 * 1000L

/**
 * Deletes the temporary copies of [name] in [dir] that a process killed mid-copy left behind
 * (each a whole model's size). Copies of this process take turns; one of another process of the
 * app is still being written, so only those unmodified for [STALE_COPY_MS] go.
 */
private fun removeStaleCopies(dir: File, name: String) {
    val before = System.currentTimeMillis() - STALE_COPY_MS
    dir.listFiles { file -> file.name.startsWith(name) && file.name.endsWith(".partial") }
        ?.filter { it.lastModified() < before }
        ?.forEach { it.delete() }
}

/** The asset's length when it is stored uncompressed (as `noCompress` makes it), else null. */
private fun assetSize(context: Context, name: String): Long? =
    runCatching { context.assets.openFd(name).use { it.length } }.getOrNull()?.takeIf { it >= 0 }
