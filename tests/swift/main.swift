// Tests the generated Swift bindings (bindings/swift) on Linux against the
// built libchaya_uniffi.so. Compiled together with chaya.swift by
// tests/swift/run.sh. Usage: chaya-swift-test MODEL — ends with
// "swift: N passed, N failed".

import Foundation

/// A token sink that keeps every piece; `onPiece` (given the count) decides whether to go on.
final class Collect: TokenSink, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    private let onPiece: (Int) throws -> Bool

    init(_ onPiece: @escaping (Int) throws -> Bool = { _ in true }) {
        self.onPiece = onPiece
    }

    var pieces: [String] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }

    func onToken(text: String) throws -> Bool {
        lock.lock()
        stored.append(text)
        let count = stored.count
        lock.unlock()
        return try onPiece(count)
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw Failure(description: message()) }
}

func seeded(seed: UInt64 = 42, maxTokens: UInt32 = 24) -> GenerateOptions {
    GenerateOptions(maxTokens: maxTokens, seed: seed, stopAtEos: false)
}

/// Expects `body` to throw a `ChayaError` that `matches` accepts (given its message).
func expectError(_ body: () throws -> Void, _ matches: (ChayaError) -> String?) throws {
    do {
        try body()
    } catch let error as ChayaError {
        guard let message = matches(error) else { throw Failure(description: "wrong error \(error)") }
        _ = message
        return
    }
    throw Failure(description: "no error thrown")
}

/// Boxes a value written by another thread (read after `join`).
final class Box<T>: @unchecked Sendable {
    var value: T?
}

let modelPath = CommandLine.arguments.count > 1
    ? CommandLine.arguments[1] : "models/chaya-tiny-random.safetensors"
let model = try Model.fromPath(path: modelPath, options: LoadOptions(threads: 1))

var tests: [(String, () throws -> Void)] = []

tests.append(("streams pieces that make the text", {
    let sink = Collect()
    let summary = try model.newSession().generate(prompt: "Once upon a time", options: seeded(), sink: sink)
    try check(summary.stopReason == .length, "stop reason \(summary.stopReason)")
    try check(summary.tokens.count == 24, "\(summary.tokens.count) tokens")
    try check(!sink.pieces.isEmpty && sink.pieces.allSatisfy { !$0.isEmpty }, "pieces \(sink.pieces)")
    try check(sink.pieces.joined() == summary.text, "pieces \(sink.pieces) vs \(summary.text)")
}))

tests.append(("same seed, same text", {
    let a = try model.newSession().generate(prompt: "The cat", options: seeded(seed: 7), sink: Collect())
    let b = try model.newSession().generate(prompt: "The cat", options: seeded(seed: 7), sink: Collect())
    try check(a.text == b.text && a.tokens == b.tokens, "runs differ: \(a) vs \(b)")
}))

tests.append(("cancel from another thread", {
    let session = try model.newSession()
    let started = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    let result = Box<Result<GenerateSummary, Error>>()
    let worker = Thread {
        result.value = Result {
            let options = GenerateOptions(maxTokens: 100_000, seed: 1, stopAtEos: false)
            return try session.generate(prompt: "Hello", options: options, sink: Collect { count in
                if count == 1 { started.signal() }
                return true
            })
        }
        done.signal()
    }
    worker.start()
    try check(started.wait(timeout: .now() + 60) == .success, "no token within 60 s")
    session.cancel()
    try check(done.wait(timeout: .now() + 60) == .success, "generation did not stop after cancel")
    let summary = try result.value!.get()
    try check(summary.stopReason == .cancelled, "stop reason \(summary.stopReason)")
    try check(summary.tokens.count > 0 && summary.tokens.count < 100_000, "\(summary.tokens.count) tokens")
}))

tests.append(("sink returning false stops", {
    let summary = try model.newSession().generate(prompt: "Hi", options: seeded(), sink: Collect { $0 < 3 })
    try check(summary.stopReason == .callback && summary.tokens.count == 3, "\(summary)")
}))

tests.append(("sink error is a Callback error", {
    try expectError({
        _ = try model.newSession().generate(prompt: "Hi", options: seeded(), sink: Collect { _ in
            throw TokenSinkError.Failed(reason: "sink broke")
        })
    }) { error in
        if case .Callback(let message) = error, message.contains("sink broke") { return message }
        return nil
    }
}))

tests.append(("temperature -1 is InvalidOption naming temperature", {
    try expectError({
        _ = try model.newSession().generate(prompt: "Hi", options: GenerateOptions(temperature: -1), sink: Collect())
    }) { error in
        if case .InvalidOption(let message) = error, message.contains("temperature") { return message }
        return nil
    }
}))

tests.append(("missing file is Io", {
    try expectError({ _ = try Model.fromPath(path: "/no/such/model.safetensors") }) { error in
        if case .Io(let message) = error, message.contains("/no/such/model") { return message }
        return nil
    }
}))

tests.append(("loads from bytes", {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: modelPath))
    let fromBytes = try Model.fromBytes(bytes: bytes, options: LoadOptions(threads: 1, contextLength: 64, prefillChunk: 3))
    try check(fromBytes.vocabSize() == model.vocabSize(), "vocab \(fromBytes.vocabSize())")
    try check(fromBytes.contextLength() == 64, "context \(fromBytes.contextLength())")
    try check(fromBytes.prefillChunk() == 3 && model.prefillChunk() == 256, "chunk \(fromBytes.prefillChunk())")
    let a = try fromBytes.newSession().generate(prompt: "Once upon a time", options: seeded(maxTokens: 8), sink: Collect())
    let b = try model.newSession().generate(prompt: "Once upon a time", options: seeded(maxTokens: 8), sink: Collect())
    try check(a.tokens == b.tokens, "\(a.tokens) vs \(b.tokens)")
}))

tests.append(("encode and decode", {
    let ids = try model.encode(text: "Once upon a time")
    try check(!ids.isEmpty && ids.allSatisfy { $0 < model.vocabSize() }, "ids \(ids)")
    try check(try model.decode(ids: ids) == "Once upon a time", "decoded wrong")
}))

tests.append(("record defaults are core's", {
    try check(GenerateOptions() == defaultGenerateOptions(), "\(GenerateOptions()) vs \(defaultGenerateOptions())")
}))

var passed = 0
var failed = 0
for (name, test) in tests {
    let start = Date()
    let elapsed = { String(format: "%.2f s", Date().timeIntervalSince(start)) }
    do {
        try test()
        passed += 1
        print("ok   \(name) (\(elapsed()))")
    } catch {
        failed += 1
        print("FAIL \(name) (\(elapsed())): \(error)")
    }
}
print("swift: \(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
