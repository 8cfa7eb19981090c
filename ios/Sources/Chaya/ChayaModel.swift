// The async API of the chaya runtime over its uniffi bindings (chaya.swift, same module).

import Dispatch
import Foundation

public extension LoadOptions {
    /// Load options for phones: one compute thread per performance core (see `performanceCores()`).
    static var phone: LoadOptions { LoadOptions(threads: UInt32(performanceCores())) }
}

/// A loaded CHAYA model that streams completions as `AsyncThrowingStream`s. Thread-safe: load one
/// and share it.
///
/// Every blocking native call runs on a background dispatch queue, never on the caller's thread
/// or Swift's cooperative pool. Failures are `ChayaError`s, thrown by `load` or by the stream.
public final class ChayaModel: Sendable {
    /// The binding object, for what this wrapper does not cover (tokenizer, context length…).
    public let model: Model

    /// Where generations of fresh sessions run, several at a time.
    private let queue = DispatchQueue(label: "ai.chaya.model", qos: .userInitiated, attributes: .concurrent)

    private init(model: Model) {
        self.model = model
    }

    /// Loads a model file, memory-mapped: its weights are paged in from the file, not copied.
    public static func load(path: String, options: LoadOptions = .phone) async throws -> ChayaModel {
        try await runOffThread { ChayaModel(model: try Model.fromPath(path: path, options: options)) }
    }

    /// Loads a model file held in memory (the bytes are copied into native memory, which counts
    /// fully against an iOS app's memory limit; prefer a path).
    public static func load(bytes: Data, options: LoadOptions = .phone) async throws -> ChayaModel {
        try await runOffThread { ChayaModel(model: try Model.fromBytes(bytes: bytes, options: options)) }
    }

    /// Loads the model file shipped as resource `name`.`ext` of `bundle`, memory-mapped in place.
    /// Throws `ChayaError.Io` when the bundle has no such resource.
    public static func load(
        resource name: String,
        withExtension ext: String = "safetensors",
        in bundle: Bundle = .main,
        options: LoadOptions = .phone
    ) async throws -> ChayaModel {
        guard let url = bundle.url(forResource: name, withExtension: ext) else {
            throw ChayaError.Io(message: "no resource \(name).\(ext) in the bundle at \(bundle.bundlePath)")
        }
        return try await load(path: url.path, options: options)
    }

    /// Streams the completion of `prompt` in a fresh context. Generation starts at once; when the
    /// consuming task is cancelled (or the stream is dropped), generation is cancelled too.
    public func generate(_ prompt: String, options: GenerateOptions = GenerateOptions()) -> AsyncThrowingStream<String, Error> {
        let model = self.model
        return stream(on: queue, prompt: prompt, options: options) { try model.newSession() }
    }

    /// Opens a conversation whose context carries over from one `generate` to the next.
    public func newSession() async throws -> ChayaSession {
        try await runOffThread { ChayaSession(session: try self.model.newSession()) }
    }
}

/// One conversation over a `ChayaModel`. Its generations run one at a time, in the order
/// `generate` was called: a second one waits for the first instead of failing `Busy`.
public final class ChayaSession: Sendable {
    /// The binding object, for what this wrapper does not cover.
    public let session: Session

    /// Serial: the session's calls run in order, one at a time.
    private let queue = DispatchQueue(label: "ai.chaya.session", qos: .userInitiated)

    init(session: Session) {
        self.session = session
    }

    /// Appends `prompt` to the conversation and streams the reply, like `ChayaModel.generate`.
    public func generate(_ prompt: String, options: GenerateOptions = GenerateOptions()) -> AsyncThrowingStream<String, Error> {
        let session = self.session
        return stream(on: queue, prompt: prompt, options: options) { session }
    }

    /// Forgets the conversation, after any generation already started or queued.
    public func reset() async throws {
        let session = self.session
        try await inTurn { try session.reset() }
    }

    /// The conversation so far (prompts and replies), after any generation already started or
    /// queued: unlike `session.transcript()`, which fails with `Busy` while one runs.
    public func transcript() async throws -> String {
        let session = self.session
        return try await inTurn { try session.transcript() }
    }

    /// The tokens of `text` with their log-probabilities as a continuation of the conversation,
    /// which stays as it was (see `Session.score`), after any generation already started or
    /// queued: sum the `logprob`s to rank candidate replies.
    public func score(_ text: String) async throws -> [TokenLogprob] {
        let session = self.session
        return try await inTurn { try session.score(text: text) }
    }

    /// Runs `call` on the session's queue, after the calls already queued.
    private func inTurn<T: Sendable>(_ call: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try call() }) }
        }
    }
}

/// Runs the session's blocking `generate` on `queue`, yielding each piece of text into the
/// returned stream. Termination by the consumer cancels the native generation through a token of
/// this stream's own: before it starts (nothing is computed) or while it runs, never another one.
private func stream(
    on queue: DispatchQueue,
    prompt: String,
    options: GenerateOptions,
    session makeSession: @escaping @Sendable () throws -> Session
) -> AsyncThrowingStream<String, Error> {
    AsyncThrowingStream { continuation in
        let cancel = CancelToken()
        continuation.onTermination = { termination in
            if case .cancelled = termination {
                cancel.cancel()
            }
        }
        queue.async {
            guard !cancel.isCancelled() else {
                return continuation.finish()
            }
            do {
                let session = try makeSession()
                _ = try session.generate(
                    prompt: prompt, options: options, sink: StreamSink(continuation), cancel: cancel)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }
}

/// Passes generated text into a stream; stops generation once the stream has terminated.
private final class StreamSink: TokenSink, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<String, Error>.Continuation

    init(_ continuation: AsyncThrowingStream<String, Error>.Continuation) {
        self.continuation = continuation
    }

    func onToken(text: String) -> Bool {
        if case .terminated = continuation.yield(text) {
            return false
        }
        return true
    }
}

/// Runs blocking `body` on a global queue and returns (or throws) its result.
private func runOffThread<T>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(with: Result { try body() })
        }
    }
}
