// Tests the Android wrapper (android/chaya/src/main/kotlin/ai/chaya) on the JVM with
// kotlinx-coroutines, JNA and the host-built libchaya_uniffi.so. Run by tests/mobile/run.sh.
// Usage: WrapperTestKt MODEL — ends with "kotlin-wrapper: N passed, N failed".

package ai.chaya

import java.io.File
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicInteger
import chaya.testing.check
import chaya.testing.runTests
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import kotlin.coroutines.CoroutineContext
import uniffi.chaya.ChayaException
import uniffi.chaya.GenerateOptions
import uniffi.chaya.LoadOptions
import uniffi.chaya.Model
import uniffi.chaya.StopReason
import uniffi.chaya.TokenLogprob
import uniffi.chaya.TokenSink

/** Runs [body]; fails unless it throws a [T], which it returns. */
inline fun <reified T : Throwable> expect(body: () -> Unit): T {
    try {
        body()
    } catch (e: Throwable) {
        if (e is T) return e
        throw AssertionError("expected ${T::class.simpleName}, got $e", e)
    }
    throw AssertionError("expected ${T::class.simpleName}, nothing thrown")
}

fun seeded(maxTokens: UInt = 24u) = GenerateOptions(maxTokens = maxTokens, seed = 42u, stopAtEos = false)

/** Endless unless cancelled. */
val endless = GenerateOptions(maxTokens = 1_000_000u, seed = 1u, stopAtEos = false)

/** A dispatcher on one named worker thread that counts what it is given. */
class Worker : CoroutineDispatcher() {
    val dispatched = AtomicInteger()
    private val executor = Executors.newSingleThreadExecutor { Thread(it, "chaya-worker").apply { isDaemon = true } }
    override fun dispatch(context: CoroutineContext, block: Runnable) {
        dispatched.incrementAndGet()
        executor.execute(block)
    }
}

fun main(args: Array<String>) {
    val modelPath = args.getOrElse(0) { "models/chaya-tiny-random.safetensors" }
    val oneThread = LoadOptions(threads = 1u)
    val worker = Worker()
    val model = runBlocking { ChayaModel.load(modelPath, oneThread, worker) }
    val tests = linkedMapOf<String, suspend () -> Unit>()

    tests["flow pieces are the text of the plain binding"] = {
        val pieces = model.generate("Once upon a time", seeded()).toList()
        val plain = StringBuilder()
        val summary = Model.fromPath(modelPath, oneThread).use { raw ->
            raw.newSession().use { session ->
                session.generate("Once upon a time", seeded(), object : TokenSink {
                    override fun onToken(text: String) = true.also { plain.append(text) }
                })
            }
        }
        check(summary.stopReason == StopReason.LENGTH) { "stop reason ${summary.stopReason}" }
        check(pieces.isNotEmpty() && pieces.joinToString("") == plain.toString()) { "$pieces vs $plain" }
    }

    tests["native work runs on the given dispatcher, not the collector's thread"] = {
        val before = worker.dispatched.get()
        var ticks = 0
        coroutineScope {
            // Ticks only while the collector's thread is free during generation.
            val ticking = launch { while (true) { ticks++; delay(1) } }
            model.generate("Hello", seeded(maxTokens = 64u)).toList()
            ticking.cancelAndJoin()
        }
        check(worker.dispatched.get() > before) { "nothing was dispatched to the worker" }
        check(ticks > 1) { "the collector's thread was blocked: $ticks ticks" }
    }

    tests["take(3) stops an endless generation and frees the session"] = {
        model.newSession().use { session ->
            val pieces = withTimeout(60_000) { session.generate("Hello", endless).take(3).toList() }
            check(pieces.size == 3) { "$pieces" }
            // Busy if the native generation were still running. Every piece generated before
            // the cancel reached it joined the transcript, also those the flow had not delivered.
            val transcript = session.session.transcript()
            check(transcript.startsWith("Hello" + pieces.joinToString(""))) { transcript }
        }
    }

    tests["cancelling the collecting job cancels generation"] = {
        coroutineScope {
            model.newSession().use { session ->
                val got = AtomicInteger()
                val job = launch { session.generate("Once", endless).collect { got.incrementAndGet() } }
                withTimeout(60_000) { while (got.get() == 0) yield() }
                withTimeout(60_000) { job.cancelAndJoin() }
                val transcript = session.session.transcript() // not Busy: generation has stopped
                check(transcript.startsWith("Once") && got.get() < 1_000_000) { "${got.get()} pieces" }
            }
        }
    }

    tests["cancel before the first token"] = {
        coroutineScope {
            model.newSession().use { session ->
                val job = launch(start = CoroutineStart.UNDISPATCHED) { session.generate("Hi", endless).collect {} }
                withTimeout(60_000) { job.cancelAndJoin() }
                // Nothing generated; the prompt joined the conversation if the native call started.
                val transcript = session.session.transcript()
                check(transcript == "" || transcript == "Hi") { transcript }
            }
        }
    }

    tests["a collector reads its session's transcript once the generation has ended"] = {
        model.newSession().use { session ->
            var seen: String? = null
            val pieces = withTimeout(60_000) {
                session.generate("Hi", seeded(maxTokens = 8u)).onEach { if (seen == null) seen = session.transcript() }.toList()
            }
            check(pieces.size > 1 && seen == "Hi" + pieces.joinToString("")) { "$seen vs $pieces" }
        }
    }

    tests["a collector scores a continuation once the generation has ended, leaving the conversation"] = {
        model.newSession().use { session ->
            var scored: List<TokenLogprob>? = null
            val pieces = withTimeout(60_000) {
                session.generate("Hi", seeded(maxTokens = 8u)).onEach { if (scored == null) scored = session.score(" the sea") }.toList()
            }
            check(session.transcript() == "Hi" + pieces.joinToString("")) { session.session.transcript() }
            val again = session.session.score(" the sea")
            check(again.map { it.token } == model.model.encode(" the sea") && again.all { it.logprob <= 0f }) { "$again" }
            val first = scored!!
            check(first.size == again.size && first.zip(again).all { (a, b) -> a.token == b.token && Math.abs(a.logprob - b.logprob) < 1e-4f }) {
                "$first vs $again"
            }
        }
    }

    tests["a context read with maxTokens 0 is an empty flow, and the score continues it"] = {
        model.newSession().use { reader ->
            model.newSession().use { session ->
                val pieces = withTimeout(60_000) { session.generate("Hi", seeded(maxTokens = 8u)).toList() }
                val transcript = session.transcript()
                val read = withTimeout(60_000) { reader.generate(transcript, GenerateOptions(maxTokens = 0u)).toList() }
                check(read.isEmpty() && pieces.isNotEmpty() && reader.transcript() == transcript) { "$read" }
                val a = reader.score(" the sea")
                val b = session.score(" the sea")
                check(a.size == b.size && a.zip(b).all { (x, y) -> x.token == y.token && Math.abs(x.logprob - y.logprob) < 1e-4f }) {
                    "$a vs $b"
                }
            }
        }
    }

    tests["collections of one session queue instead of failing Busy"] = {
        coroutineScope {
            model.newSession().use { session ->
                val replies = List(3) { i -> async { session.generate("Turn $i.", seeded(maxTokens = 8u)).toList() } }
                    .awaitAll().map { it.joinToString("") }
                val transcript = session.session.transcript()
                check(replies.all { it.isNotEmpty() && transcript.contains(it) }) { "$replies in $transcript" }
                session.reset()
                check(session.session.transcript().isEmpty()) { "reset left ${session.session.transcript()}" }
            }
        }
    }

    tests["a collector may reset or continue its own session"] = {
        model.newSession().use { session ->
            // More pieces than a channel's default buffer (64): a generation that waited for
            // the collector would never end, and the reset waiting for it would never run.
            var pieces = 0
            withTimeout(60_000) {
                session.generate("Hi", seeded(maxTokens = 300u)).collect {
                    if (pieces++ == 0) session.reset()
                }
            }
            check(pieces > 64) { "$pieces pieces" }
            check(session.session.transcript().isEmpty()) { "reset left ${session.session.transcript()}" }
            var inner = emptyList<String>()
            withTimeout(60_000) {
                session.generate("Once", seeded(maxTokens = 4u)).collect {
                    if (inner.isEmpty()) inner = session.generate(" more", seeded(maxTokens = 4u)).toList()
                }
            }
            check(session.session.transcript().endsWith(" more" + inner.joinToString(""))) {
                session.session.transcript()
            }
        }
    }

    tests["closing a session twice, or while it generates, does not throw"] = {
        coroutineScope {
            val session = model.newSession()
            val got = AtomicInteger()
            val job = launch { session.generate("Once", endless).collect { got.incrementAndGet() } }
            withTimeout(60_000) { while (got.get() == 0) yield() }
            session.close()
            session.close()
            withTimeout(60_000) { job.join() }
            expect<IllegalStateException> { session.generate("Again").toList() }
        }
    }

    tests["closing a session as its collection starts stops the generation, every time"] = {
        coroutineScope {
            // A long prompt in 8-token passes: the native call is slow to start and to prefill.
            ChayaModel.load(modelPath, LoadOptions(threads = 1u, prefillChunk = 8u), worker).use { slow ->
                val prompt = "the quick brown fox jumps over the lazy dog ".repeat(40)
                val options = GenerateOptions(maxTokens = 200u, seed = 1u, stopAtEos = false)
                val full = slow.generate(prompt, options).toList().size
                var ranToTheEnd = 0
                repeat(100) { i ->
                    val session = slow.newSession()
                    val pieces = AtomicInteger()
                    val job = launch(Dispatchers.Default) {
                        runCatching { session.generate(prompt, options).collect { pieces.incrementAndGet() } }
                    }
                    val until = System.nanoTime() + i * 10_000L // 0 to 1 ms after the collection starts
                    while (System.nanoTime() < until) yield()
                    val endedBefore = job.isCompleted
                    session.close()
                    withTimeout(60_000) { job.join() }
                    if (!endedBefore && pieces.get() >= full) ranToTheEnd++
                }
                check(ranToTheEnd == 0) { "$ranToTheEnd of 100 generations ran to the end after close()" }
            }
        }
    }

    tests["a missing file throws ChayaException.Io from load"] = {
        val error = expect<ChayaException.Io> { ChayaModel.load("models/no-such-model.safetensors") }
        check(error.message!!.contains("no-such-model")) { "message ${error.message}" }
    }

    tests["an invalid option throws ChayaException.InvalidOption from collect"] = {
        val error = expect<ChayaException.InvalidOption> {
            model.generate("Hi", GenerateOptions(temperature = -1f)).toList()
        }
        check(error.message!!.contains("temperature")) { "message ${error.message}" }
    }

    tests["a collector's exception stops generation and is rethrown as is"] = {
        model.newSession().use { session ->
            val error = expect<IllegalStateException> {
                session.generate("Hi", endless).collect { error("collector broke") }
            }
            check(error.message == "collector broke") { "message ${error.message}" }
            check(session.generate("Again", seeded(maxTokens = 4u)).first().isNotEmpty()) { "session unusable" }
        }
    }

    tests["loads from bytes"] = {
        ChayaModel.load(File(modelPath).readBytes(), oneThread).use { fromBytes ->
            val a = fromBytes.generate("Once", seeded(maxTokens = 8u)).toList()
            val b = model.generate("Once", seeded(maxTokens = 8u)).toList()
            check(a == b) { "$a vs $b" }
        }
    }

    tests["performance cores"] = {
        val pixel8 = List(4) { 1_704_000L } + List(4) { 2_367_000L } + listOf(2_910_000L)
        val twoBig = List(4) { 1_800_000L } + List(2) { 2_400_000L }
        check(performanceCores(pixel8, 9) == 4) { "pixel8 ${performanceCores(pixel8, 9)}" }
        check(performanceCores(twoBig, 6) == 2) { "twoBig ${performanceCores(twoBig, 6)}" }
        // The fast cores, not half the processors (which would give 4).
        check(performanceCores(List(6) { 1_800_000L } + List(2) { 2_600_000L }, 8) == 2) { "two fast of eight" }
        check(performanceCores(List(8) { 2_000_000L }, 8) == 4) { "uniform 8" }
        check(performanceCores(List(4) { 2_000_000L }, 4) == 2) { "uniform 4: half" }
        check(performanceCores(emptyList(), 2) == 1) { "unreadable, 2 processors" }
        check(performanceCores(emptyList(), 1) == 1) { "unreadable, 1 processor" }
        check(performanceCores() in 1..MAX_DEFAULT_THREADS) { "this machine: ${performanceCores()}" }
        check(phoneLoadOptions().threads == performanceCores().toUInt()) { "${phoneLoadOptions()}" }
    }

    val assetDir = kotlin.io.path.createTempDirectory("chaya-assets").toFile()
    File(modelPath).copyTo(File(assetDir, "assets/model.safetensors"))
    val device = FakeDevice(assetDir)
    val copied = File(assetDir, "no-backup/chaya/model.safetensors")
    val copyDir = copied.parentFile
    val asset = File(assetDir, "assets/model.safetensors").readBytes()

    tests["asset: concurrent loads copy it once, completely, and it loads"] = {
        val failures = java.util.concurrent.ConcurrentLinkedQueue<Throwable>()
        val copies = List(4) {
            Thread { runCatching { copyAsset(device, "model.safetensors") }.onFailure(failures::add) }
        }
        copies.forEach { it.start() }
        copies.forEach { it.join() }
        check(failures.isEmpty()) { "copies failed: ${failures.toList()}" }
        check(copied.readBytes().contentEquals(asset)) { "copy differs from the asset" }
        check(copyDir.list()!!.toList() == listOf("model.safetensors")) { "left: ${copyDir.list()!!.toList()}" }
        val stamp = copied.lastModified()
        ChayaModel.loadAsset(device, "model.safetensors", oneThread, worker).use { loaded ->
            check(loaded.model.vocabSize() == model.model.vocabSize()) { "vocabulary" }
        }
        check(copied.lastModified() == stamp) { "a current copy was made again" }
    }

    tests["asset: a copy cut short, or older than the app, is made again"] = {
        copyAsset(device, "model.safetensors")
        java.io.RandomAccessFile(copied, "rw").use { it.setLength(1000) }
        copyAsset(device, "model.safetensors")
        check(copied.readBytes().contentEquals(asset)) { "a truncated copy was kept" }
        copied.writeBytes(ByteArray(asset.size))
        device.installed = System.currentTimeMillis() + 60_000
        copyAsset(device, "model.safetensors")
        check(copied.readBytes().contentEquals(asset)) { "an app update did not refresh the copy" }
        device.installed = 0
    }

    tests["asset: a copy left by a killed process is removed, one being written is not"] = {
        val stale = File(copyDir, "model.safetensors123.partial").apply { writeBytes(asset) }
        stale.setLastModified(System.currentTimeMillis() - STALE_COPY_MS - 60_000)
        val writing = File(copyDir, "model.safetensors456.partial").apply { writeBytes(ByteArray(10)) }
        java.io.RandomAccessFile(copied, "rw").use { it.setLength(1000) } // forces a copy
        copyAsset(device, "model.safetensors")
        check(!stale.exists()) { "a stale copy was kept" }
        check(writing.exists()) { "a copy being written was removed" }
        check(copied.readBytes().contentEquals(asset)) { "copy differs from the asset" }
        writing.delete()
        // Relaunched after the kill: the copy is current, the left one goes all the same.
        val left = File(copyDir, "model.safetensors789.partial").apply { writeBytes(asset) }
        left.setLastModified(System.currentTimeMillis() - STALE_COPY_MS - 60_000)
        copyAsset(device, "model.safetensors")
        check(!left.exists()) { "a stale copy beside a current one was kept" }
    }

    tests["asset: a missing one is an IOException and leaves nothing behind"] = {
        expect<java.io.FileNotFoundException> { copyAsset(device, "missing.safetensors") }
        check(copyDir.list()!!.toList() == listOf("model.safetensors")) { "left: ${copyDir.list()!!.toList()}" }
    }

    tests["asset: a compressed one (no size known) is copied once, and again after an app update"] = {
        val zipped = FakeDevice(assetDir, compressed = setOf("model.safetensors"))
        copied.delete()
        copyAsset(zipped, "model.safetensors")
        check(copied.readBytes().contentEquals(asset)) { "copy differs from the asset" }
        copied.writeBytes(ByteArray(asset.size)) // a marker: kept while the copy counts as current
        copyAsset(zipped, "model.safetensors")
        check(copied.readBytes().all { it == 0.toByte() }) { "a current copy was made again" }
        zipped.installed = System.currentTimeMillis() + 60_000
        copyAsset(zipped, "model.safetensors")
        check(copied.readBytes().contentEquals(asset)) { "an app update did not refresh the copy" }
    }

    tests["asset: a one-character name copies too"] = {
        File(modelPath).copyTo(File(assetDir, "assets/m"))
        val copy = copyAsset(device, "m")
        check(copy == File(copyDir, "m") && copy.readBytes().contentEquals(asset)) { "$copy" }
        copy.delete()
    }

    runTests("kotlin-wrapper", tests.mapValues { (_, test) -> { runBlocking { test() } } }) {
        model.close()
        assetDir.deleteRecursively()
    }
}

/**
 * A device whose assets are the files of `root/assets` ([compressed] ones without a size, as
 * compressed APK entries) and whose app was installed at [installed].
 */
class FakeDevice(root: File, compressed: Set<String> = emptySet()) : android.content.Context() {
    @Volatile var installed = 0L
    override val noBackupFilesDir = File(root, "no-backup")
    override val packageName = "ai.chaya.test"
    override val assets = android.content.res.AssetManager(File(root, "assets"), compressed)
    override val packageManager = object : android.content.pm.PackageManager() {
        override fun getPackageInfo(packageName: String, flags: Int) =
            android.content.pm.PackageInfo().also { it.lastUpdateTime = installed }
    }
}
