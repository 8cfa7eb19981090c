// The coroutine API of the chaya runtime over its uniffi bindings (package uniffi.chaya).
// Plain Kotlin/JVM: compiled and tested on the JVM by tests/mobile/run.sh.

package ai.chaya

import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.ProducerScope
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.channelFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import uniffi.chaya.CancelToken
import uniffi.chaya.GenerateOptions
import uniffi.chaya.LoadOptions
import uniffi.chaya.Model
import uniffi.chaya.Session
import uniffi.chaya.TokenLogprob
import uniffi.chaya.TokenSink
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicReference

/** Load options for phones: one compute thread per performance core (see [performanceCores]). */
fun phoneLoadOptions(): LoadOptions = LoadOptions(threads = performanceCores().toUInt())

/**
 * A loaded CHAYA model that streams completions as [Flow]s. Thread-safe: load one and share it.
 *
 * Every blocking native call runs on [dispatcher], never on the caller's thread: a dispatcher
 * that allows blocking calls, with more than one thread ([Dispatchers.IO], the default), since a
 * generation holds one of its threads from start to end. [close] and [ChayaSession.close] run on
 * the caller's thread: they do not wait for a running generation. Failures are
 * [uniffi.chaya.ChayaException]s, thrown by [load] or by the flow's `collect`.
 */
class ChayaModel private constructor(
    /** The binding object, for what this wrapper does not cover (tokenizer, context length…). */
    val model: Model,
    private val dispatcher: CoroutineDispatcher,
) : AutoCloseable {

    /**
     * Streams the completion of [prompt] in a fresh context. Generation starts when the flow is
     * collected; cancelling the collection stops it, and `collect` returns once it has stopped.
     */
    fun generate(prompt: String, options: GenerateOptions = GenerateOptions()): Flow<String> =
        channelFlow {
            createOn(dispatcher) { model.newSession() }.use { session ->
                CancelToken().use { cancel -> produce(session, prompt, options, dispatcher, cancel) }
            }
        }.buffer(Channel.UNLIMITED)

    /** Opens a conversation whose context carries over from one `generate` to the next. */
    suspend fun newSession(): ChayaSession =
        ChayaSession(createOn(dispatcher) { model.newSession() }, dispatcher)

    /**
     * Frees the native model once no session or call uses it. Running generations go on until
     * their collection is cancelled (leaving a lifecycle scope does that).
     */
    override fun close() = model.close()

    /** Loaders. */
    companion object {
        /**
         * Loads a model file, memory-mapped: its weights are paged in from the file, not copied.
         * [options] default to [phoneLoadOptions] (worked out on [dispatcher]: it reads sysfs).
         */
        suspend fun load(
            path: String,
            options: LoadOptions? = null,
            dispatcher: CoroutineDispatcher = Dispatchers.IO,
        ): ChayaModel = ChayaModel(
            createOn(dispatcher) { Model.fromPath(path, options ?: phoneLoadOptions()) },
            dispatcher,
        )

        /** Loads a model file held in memory, e.g. an asset's bytes (they are copied into native memory). */
        suspend fun load(
            bytes: ByteArray,
            options: LoadOptions? = null,
            dispatcher: CoroutineDispatcher = Dispatchers.IO,
        ): ChayaModel = ChayaModel(
            createOn(dispatcher) { Model.fromBytes(bytes, options ?: phoneLoadOptions()) },
            dispatcher,
        )
    }
}

/**
 * One conversation over a [ChayaModel]. Its generations run one at a time, in the order their
 * flows are collected: a second collection waits for the first instead of failing. A collector
 * may call [reset], [transcript], [score] or [generate] on its own session: they run once the current
 * generation has ended (the flow buffers its text, so the generation never waits for the
 * collector). Using a closed session throws [IllegalStateException].
 */
class ChayaSession internal constructor(
    /** The binding object, for what this wrapper does not cover. */
    val session: Session,
    private val dispatcher: CoroutineDispatcher,
) : AutoCloseable {
    private val turn = Mutex()
    private val closed = AtomicBoolean(false)

    /** The cancel token of the generation whose turn it is, for [close]. */
    private val running = AtomicReference<CancelToken?>(null)

    /** Appends [prompt] to the conversation and streams the reply, like [ChayaModel.generate]. */
    fun generate(prompt: String, options: GenerateOptions = GenerateOptions()): Flow<String> =
        channelFlow {
            turn.withLock {
                CancelToken().use { cancel ->
                    running.set(cancel)
                    try {
                        // After publishing the token: a close() that did not see it is seen here.
                        if (closed.get()) cancel.cancel()
                        produce(session, prompt, options, dispatcher, cancel)
                    } finally {
                        running.set(null)
                    }
                }
            }
        }.buffer(Channel.UNLIMITED)

    /** Forgets the conversation, after any running generation. */
    suspend fun reset() = turn.withLock { withContext(dispatcher) { session.reset() } }

    /**
     * The conversation so far (prompts and replies), after any running generation: unlike
     * `session.transcript()`, which fails with `Busy` while one runs.
     */
    suspend fun transcript(): String = turn.withLock { withContext(dispatcher) { session.transcript() } }

    /**
     * The tokens of [text] with their log-probabilities as a continuation of the conversation,
     * which stays as it was (see `Session.score`), after any running generation: sum the
     * `logprob`s to rank candidate replies.
     */
    suspend fun score(text: String): List<TokenLogprob> =
        turn.withLock { withContext(dispatcher) { session.score(text) } }

    /**
     * Cancels any running generation of this wrapper (also one whose native call has not started
     * yet) and any native call already generating on [session] directly, then frees the native
     * session once no call uses it.
     * Collections still waiting for their turn throw [IllegalStateException]. Closing again
     * does nothing.
     */
    override fun close() {
        if (closed.compareAndSet(false, true)) {
            try {
                running.get()?.cancel()
            } catch (ended: IllegalStateException) {
                // Its generation ended and closed the token meanwhile.
            }
            session.cancel()
            session.close()
        }
    }
}

/**
 * Runs [session]'s blocking `generate` on [dispatcher] and sends each piece of text into this
 * channel. If the collector goes away first, the native generation is cancelled through [cancel]
 * (which also stops it before its first forward pass when it has not started) and awaited.
 */
private suspend fun ProducerScope<String>.produce(
    session: Session,
    prompt: String,
    options: GenerateOptions,
    dispatcher: CoroutineDispatcher,
    cancel: CancelToken,
) {
    val sink = object : TokenSink {
        // Never waits (the flow's buffer is unbounded); false (stop) once the collector is gone.
        override fun onToken(text: String): Boolean = trySendBlocking(text).isSuccess
    }
    val generation = launch(dispatcher) { session.generate(prompt, options, sink, cancel) }
    try {
        generation.join()
    } finally {
        if (!generation.isCompleted) {
            cancel.cancel()
            withContext(NonCancellable) { generation.join() }
        }
    }
}

/**
 * Runs [create] on [dispatcher] and returns what it made; closes it instead if the caller was
 * cancelled meanwhile (withContext then throws its result away, which would leave the native
 * object to the garbage collector).
 */
private suspend fun <T : AutoCloseable> createOn(dispatcher: CoroutineDispatcher, create: () -> T): T {
    var made: T? = null
    try {
        withContext(dispatcher) { made = create() }
        return made!!.also { made = null }
    } finally {
        made?.close()
    }
}
