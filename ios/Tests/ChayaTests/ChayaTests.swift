// Tests of the Swift wrapper (ChayaModel, ChayaSession) against the real native library, with the
// tiny random model bundled as a test resource. Run on Linux by tests/mobile/swift.sh.

import Chaya
import Foundation
import XCTest

/// Seeded options that never stop at end-of-text.
private func seeded(_ maxTokens: UInt32 = 24) -> GenerateOptions {
    GenerateOptions(maxTokens: maxTokens, seed: 42, stopAtEos: false)
}

/// Endless unless cancelled.
private let endless = GenerateOptions(maxTokens: 1_000_000, seed: 1, stopAtEos: false)

private let oneThread = LoadOptions(threads: 1)

/// Every piece of `stream`.
private func collect(_ stream: AsyncThrowingStream<String, Error>) async throws -> [String] {
    var pieces: [String] = []
    for try await piece in stream {
        pieces.append(piece)
    }
    return pieces
}

/// Appends the text given to it.
private final class Collector: TokenSink, @unchecked Sendable {
    var text = ""
    func onToken(text: String) -> Bool {
        self.text += text
        return true
    }
}

/// Counts pieces across threads.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() { lock.lock(); value += 1; lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return value }
}

/// Set once, read from any thread.
private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    func raise() { lock.lock(); set = true; lock.unlock() }
    var isRaised: Bool { lock.lock(); defer { lock.unlock() }; return set }
}

/// Runs `body`, ending the test process with a message if it has not finished after `seconds`:
/// a cancel that fails leaves an endless generation running, and XCTest's per-test timeouts
/// exist on Apple platforms only.
private func watchdog<T>(_ test: String = #function, seconds: Double = 60,
                         _ body: () async throws -> T) async rethrows -> T {
    let done = Flag()
    DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
        if !done.isRaised {
            fputs("\(test): not finished after \(seconds) s (a generation that was not stopped?)\n", stderr)
            exit(1)
        }
    }
    defer { done.raise() }
    return try await body()
}

final class ChayaTests: XCTestCase {
    private var modelURL: URL {
        Bundle.module.url(forResource: "chaya-tiny-random", withExtension: "safetensors")!
    }

    private func loadModel() async throws -> ChayaModel {
        try await ChayaModel.load(resource: "chaya-tiny-random", in: .module, options: oneThread)
    }

    func testStreamIsTheTextOfThePlainBinding() async throws {
        let model = try await loadModel()
        let pieces = try await collect(model.generate("Once upon a time", options: seeded()))

        let plain = Collector()
        let session = try Model.fromPath(path: modelURL.path, options: oneThread).newSession()
        let summary = try session.generate(prompt: "Once upon a time", options: seeded(), sink: plain)
        XCTAssertEqual(summary.stopReason, .length)
        XCTAssertFalse(pieces.isEmpty)
        XCTAssertEqual(pieces.joined(), plain.text)
        XCTAssertEqual(pieces.joined(), summary.text)
    }

    func testTaskCancellationStopsGeneration() async throws {
        try await watchdog {
            let session = try await loadModel().newSession()
            let counter = Counter()
            let consumer = Task {
                for try await _ in session.generate("Once", options: endless) {
                    counter.increment()
                }
            }
            while counter.count < 3 {
                try await Task.sleep(nanoseconds: 1_000_000)
            }
            consumer.cancel()
            _ = try? await consumer.value
            // The session's calls run in order: this one only starts once the endless one has stopped.
            let next = try await collect(session.generate(" Again", options: seeded(4)))
            XCTAssertFalse(next.isEmpty)
            let transcript = try session.session.transcript()
            XCTAssertTrue(transcript.hasPrefix("Once"), transcript)
            XCTAssertTrue(transcript.contains(" Again"), transcript)
            XCTAssertTrue(transcript.hasSuffix(next.joined()), transcript)
            XCTAssertLessThan(counter.count, 100_000)
        }
    }

    func testDroppingTheStreamCancelsGeneration() async throws {
        try await watchdog {
            let session = try await loadModel().newSession()
            var first: String?
            for try await piece in session.generate("Hello", options: endless) {
                first = piece
                break // ends the iteration and drops the stream
            }
            XCTAssertNotNil(first)
            let next = try await collect(session.generate(" More", options: seeded(4)))
            XCTAssertFalse(next.isEmpty)
        }
    }

    func testCancelBeforeTheFirstPiece() async throws {
        try await watchdog {
            let session = try await loadModel().newSession()
            let consumer = Task {
                try await collect(session.generate("Hi", options: endless))
            }
            consumer.cancel()
            _ = try? await consumer.value
            let next = try await collect(session.generate(" there", options: seeded(4)))
            XCTAssertFalse(next.isEmpty)
        }
    }

    func testSessionGenerationsQueueInsteadOfFailingBusy() async throws {
        let session = try await loadModel().newSession()
        let replies = try await withThrowingTaskGroup(of: String.self) { group in
            for turn in 0..<3 {
                group.addTask { try await collect(session.generate("Turn \(turn).", options: seeded(8))).joined() }
            }
            var replies: [String] = []
            for try await reply in group {
                replies.append(reply)
            }
            return replies
        }
        let transcript = try session.session.transcript()
        XCTAssertEqual(replies.count, 3)
        for reply in replies {
            XCTAssertFalse(reply.isEmpty)
            XCTAssertTrue(transcript.contains(reply), "\(reply) in \(transcript)")
        }
        try await session.reset()
        XCTAssertEqual(try session.session.transcript(), "")
    }

    func testTranscriptWaitsForTheGenerationInProgress() async throws {
        let session = try await loadModel().newSession()
        var pieces: [String] = []
        var seen: String?
        for try await piece in session.generate("Hi", options: seeded(8)) {
            pieces.append(piece)
            if seen == nil {
                seen = try await session.transcript() // the plain binding's would throw Busy here
            }
        }
        XCTAssertGreaterThan(pieces.count, 1)
        XCTAssertEqual(seen, "Hi" + pieces.joined())
    }

    func testScoreWaitsForTheGenerationInProgressAndLeavesTheConversation() async throws {
        let model = try await loadModel()
        let session = try await model.newSession()
        var pieces: [String] = []
        var scored: [TokenLogprob]?
        for try await piece in session.generate("Hi", options: seeded(8)) {
            pieces.append(piece)
            if scored == nil {
                scored = try await session.score(" the sea") // the plain binding's would throw Busy here
            }
        }
        let transcript = try await session.transcript()
        XCTAssertEqual(transcript, "Hi" + pieces.joined())
        let again = try session.session.score(text: " the sea")
        XCTAssertEqual(again.map(\.token), try model.model.encode(text: " the sea"))
        XCTAssertTrue(again.allSatisfy { $0.logprob <= 0 }, "\(again)")
        XCTAssertEqual(scored?.count, again.count)
        for (a, b) in zip(scored ?? [], again) {
            XCTAssertEqual(a.token, b.token)
            XCTAssertEqual(a.logprob, b.logprob, accuracy: 1e-4)
        }
    }

    func testAContextReadWithMaxTokensZeroIsAnEmptyStreamAndTheScoreContinuesIt() async throws {
        let model = try await loadModel()
        let session = try await model.newSession()
        let reader = try await model.newSession()
        let pieces = try await collect(session.generate("Hi", options: seeded(8)))
        let transcript = try await session.transcript()
        let read = try await collect(reader.generate(transcript, options: GenerateOptions(maxTokens: 0)))
        XCTAssertFalse(pieces.isEmpty)
        XCTAssertEqual(read, [])
        let readTranscript = try await reader.transcript()
        XCTAssertEqual(readTranscript, transcript)
        let a = try await reader.score(" the sea")
        let b = try await session.score(" the sea")
        XCTAssertEqual(a.map(\.token), b.map(\.token))
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.logprob, y.logprob, accuracy: 1e-4)
        }
    }

    func testMissingFileThrowsIo() async throws {
        do {
            _ = try await ChayaModel.load(path: "no-such-model.safetensors")
            XCTFail("load succeeded")
        } catch let ChayaError.Io(message) {
            XCTAssertTrue(message.contains("no-such-model"), message)
        }
    }

    func testMissingResourceThrowsIo() async throws {
        do {
            _ = try await ChayaModel.load(resource: "no-such-model", in: .module)
            XCTFail("load succeeded")
        } catch let ChayaError.Io(message) {
            XCTAssertTrue(message.contains("no-such-model.safetensors"), message)
        }
    }

    func testInvalidOptionThrowsFromTheStream() async throws {
        let model = try await loadModel()
        do {
            _ = try await collect(model.generate("Hi", options: GenerateOptions(temperature: -1)))
            XCTFail("generation succeeded")
        } catch let ChayaError.InvalidOption(message) {
            XCTAssertTrue(message.contains("temperature"), message)
        }
    }

    func testLoadsFromBytes() async throws {
        let fromBytes = try await ChayaModel.load(bytes: try Data(contentsOf: modelURL), options: oneThread)
        let fromResource = try await loadModel()
        let a = try await collect(fromBytes.generate("Once", options: seeded(8)))
        let b = try await collect(fromResource.generate("Once", options: seeded(8)))
        XCTAssertEqual(a, b)
    }

    func testPhoneDefaults() {
        XCTAssertTrue((1...maxDefaultThreads).contains(performanceCores()))
        XCTAssertEqual(LoadOptions.phone.threads, UInt32(performanceCores()))
    }
}
