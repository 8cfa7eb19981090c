// Tests the generated Kotlin bindings (bindings/kotlin) on the JVM, through JNA
// and the built libchaya_uniffi.so. Run by tests/kotlin/run.sh.
// Usage: MainKt MODEL — ends with "kotlin: N passed, N failed".

import java.io.File
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import chaya.testing.check
import chaya.testing.runTests
import uniffi.chaya.ChayaException
import uniffi.chaya.GenerateOptions
import uniffi.chaya.GenerateSummary
import uniffi.chaya.LoadOptions
import uniffi.chaya.Model
import uniffi.chaya.StopReason
import uniffi.chaya.TokenSink
import uniffi.chaya.defaultGenerateOptions

/** A token sink that keeps every piece; [onPiece] (given the count) decides whether to go on. */
class Collect(private val onPiece: (Int) -> Boolean = { true }) : TokenSink {
    val pieces = java.util.Collections.synchronizedList(mutableListOf<String>())

    override fun onToken(text: String): Boolean {
        pieces.add(text)
        return onPiece(pieces.size)
    }
}

fun seeded(seed: ULong = 42u, maxTokens: UInt = 24u) =
    GenerateOptions(maxTokens = maxTokens, seed = seed, stopAtEos = false)

fun main(args: Array<String>) {
    val modelPath = args.getOrElse(0) { "models/chaya-tiny-random.safetensors" }
    val model = Model.fromPath(modelPath, LoadOptions(threads = 1u))

    val tests = linkedMapOf<String, () -> Unit>()

    tests["streams pieces that make the text"] = {
        val sink = Collect()
        val summary = model.newSession().generate("Once upon a time", seeded(), sink)
        check(summary.stopReason == StopReason.LENGTH) { "stop reason ${summary.stopReason}" }
        check(summary.tokens.size == 24) { "${summary.tokens.size} tokens" }
        check(sink.pieces.isNotEmpty() && sink.pieces.all { it.isNotEmpty() }) { "pieces ${sink.pieces}" }
        check(sink.pieces.joinToString("") == summary.text) { "pieces ${sink.pieces} vs ${summary.text}" }
    }

    tests["same seed, same text"] = {
        val runs = List(2) { model.newSession().generate("The cat", seeded(seed = 7u), Collect()) }
        check(runs[0].text == runs[1].text && runs[0].tokens == runs[1].tokens) { "runs differ: $runs" }
    }

    tests["cancel from another thread"] = {
        val session = model.newSession()
        val started = CountDownLatch(1)
        var summary: GenerateSummary? = null
        var error: Throwable? = null
        val worker = Thread {
            try {
                val options = GenerateOptions(maxTokens = 100000u, stopAtEos = false, seed = 1u)
                summary = session.generate("Hello", options, Collect { started.countDown(); true })
            } catch (e: Throwable) {
                error = e
            }
        }
        worker.start()
        check(started.await(60, TimeUnit.SECONDS)) { "no token within 60 s" }
        session.cancel()
        worker.join(60_000)
        check(!worker.isAlive) { "generation did not stop after cancel" }
        check(error == null) { "generate threw $error" }
        check(summary!!.stopReason == StopReason.CANCELLED) { "stop reason ${summary!!.stopReason}" }
        check(summary!!.tokens.size in 1 until 100000) { "${summary!!.tokens.size} tokens" }
    }

    tests["sink returning false stops"] = {
        val summary = model.newSession().generate("Hi", seeded(), Collect { it < 3 })
        check(summary.stopReason == StopReason.CALLBACK && summary.tokens.size == 3) { "$summary" }
    }

    tests["sink exception is a Callback error"] = {
        try {
            model.newSession().generate("Hi", seeded(), Collect { throw IllegalStateException("sink broke") })
            throw AssertionError("no ChayaException.Callback")
        } catch (e: ChayaException.Callback) {
            check(e.message!!.contains("sink broke")) { "message: ${e.message}" }
        }
    }

    tests["temperature -1 is InvalidOption naming temperature"] = {
        try {
            model.newSession().generate("Hi", GenerateOptions(temperature = -1f), Collect())
            throw AssertionError("no ChayaException.InvalidOption")
        } catch (e: ChayaException.InvalidOption) {
            check(e.message!!.contains("temperature")) { "message: ${e.message}" }
        }
    }

    tests["missing file is Io"] = {
        try {
            Model.fromPath("models/no-such-model.safetensors")
            throw AssertionError("no ChayaException.Io")
        } catch (e: ChayaException.Io) {
            check(e.message!!.contains("no-such-model")) { "message: ${e.message}" }
        }
    }

    tests["loads from bytes"] = {
        val fromBytes = Model.fromBytes(File(modelPath).readBytes(), LoadOptions(threads = 1u, contextLength = 64u, prefillChunk = 3u))
        check(fromBytes.vocabSize() == model.vocabSize()) { "vocab ${fromBytes.vocabSize()}" }
        check(fromBytes.contextLength() == 64u) { "context ${fromBytes.contextLength()}" }
        check(fromBytes.prefillChunk() == 3u && model.prefillChunk() == 256u) { "chunk ${fromBytes.prefillChunk()}" }
        val a = fromBytes.newSession().generate("Once upon a time", seeded(maxTokens = 8u), Collect())
        val b = model.newSession().generate("Once upon a time", seeded(maxTokens = 8u), Collect())
        check(a.tokens == b.tokens) { "${a.tokens} vs ${b.tokens}" }
        fromBytes.close()
    }

    tests["encode and decode"] = {
        val ids = model.encode("Once upon a time")
        check(ids.isNotEmpty() && ids.all { it < model.vocabSize() }) { "ids $ids" }
        check(model.decode(ids) == "Once upon a time") { "decoded ${model.decode(ids)}" }
    }

    tests["record defaults are core's"] = {
        check(GenerateOptions() == defaultGenerateOptions()) { "${GenerateOptions()} vs ${defaultGenerateOptions()}" }
    }

    runTests("kotlin", tests) { model.close() }
}
