// Stand-ins for android.content.res.AssetManager and AssetFileDescriptor, serving the files of
// a directory; an asset named in `compressed` has no descriptor, as a compressed APK entry.

package android.content.res

import java.io.Closeable
import java.io.File
import java.io.FileNotFoundException
import java.io.InputStream

open class AssetManager(private val dir: File, private val compressed: Set<String> = emptySet()) {
    fun open(name: String): InputStream = File(dir, name).inputStream()

    fun openFd(name: String): AssetFileDescriptor {
        if (name in compressed) throw FileNotFoundException("$name is compressed")
        return AssetFileDescriptor(File(dir, name).length())
    }
}

class AssetFileDescriptor(val length: Long) : Closeable {
    override fun close() {}
}
