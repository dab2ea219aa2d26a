import AgentWire
import Logging
@_spi(Fuzzing) import SidecarCore

/// One real `MCPStdioServer` in this process, over an upstream in memory (usually
/// ``MemoryUpstream``), its stdout written by the real writer thread into an ``OutputFile``:
/// lines in, messages out, no process and no network. The test plays the reader thread, as
/// `sidecar-fuzz` does.
///
/// Every wait is bounded, and asynchronous (`Task.sleep`), so a waiting test never holds a thread
/// of the cooperative pool that the server's own tasks need. The bounds are generous (two minutes):
/// the server's tasks share that pool with every other suite of the test process, and on a loaded
/// two-core machine suites that block it (child processes waited for, large outputs scanned) have
/// held it for over 30 s. A bound is not an assertion: a test that passes passes at once.
public final class InMemoryStdioServer: Sendable {
    public let server: MCPStdioServer
    public let output: OutputFile

    /// - Parameters:
    ///   - options: Narrowing, limits and waits (the product's defaults unless given).
    ///   - catalog: Paired mode's stored catalog, if the test wants paired mode.
    public init(upstream: any MCPUpstream, options: ServeOptions = ServeOptions(), catalog: ToolCatalogMemory? = nil) {
        output = OutputFile()
        let logger = Logger(label: "in-memory-stdio") { _ in DiscardingLogHandler() }
        server = MCPStdioServer(options: options, upstream: upstream, logger: logger, input: -1, output: output.descriptor, catalog: catalog)
    }

    /// Feeds one line, as the reader thread would (without its newline).
    public func send(_ line: String) { server.feed(.line(Array(line.utf8))) }

    /// Feeds one message, serialized.
    public func send(_ message: JSONValue) { server.feed(.line(message.serialized())) }

    /// Feeds an event the reader thread produces (an oversized line, the end of input).
    public func feed(_ event: StdinEvent) { server.feed(event) }

    /// The lines written so far (whatever is queued is written first, for at most 10 s).
    public func lines() -> [String] {
        _ = server.waitForOutput(timeoutNanoseconds: 10_000_000_000)
        let text = String(decoding: output.contents(), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// The messages written so far; a line that is not JSON becomes a string holding the line.
    public func messages() -> [JSONValue] {
        lines().map { line in (try? JSONValue(parsing: line)) ?? .string(line) }
    }

    /// Waits until the written messages satisfy `condition`, at most `timeout`; returns them either way.
    @discardableResult
    public func messages(
        waitingAtMost timeout: Duration = InMemoryStdioServer.patience, until condition: ([JSONValue]) -> Bool
    ) async -> [JSONValue] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let written = messages()
            if condition(written) || ContinuousClock.now >= deadline { return written }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Sends a request and waits (at most `timeout`) for the message that answers its id: the
    /// answer, or nil.
    public func request(_ message: JSONValue, waitingAtMost timeout: Duration = InMemoryStdioServer.patience) async -> JSONValue? {
        let id = message["id"]
        send(message)
        let written = await messages(waitingAtMost: timeout) { $0.contains { Self.answers($0, id: id) } }
        return written.last { Self.answers($0, id: id) }
    }

    /// Waits until no call is in flight (open subscriptions aside), at most `timeout`.
    @discardableResult
    public func settle(waitingAtMost timeout: Duration = InMemoryStdioServer.patience) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while server.callsInFlight > 0 {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// The graceful shutdown `run()` ends with; returns every message written.
    public func stop() async -> [JSONValue] {
        await server.stop(reason: "test done")
        return messages()
    }

    /// How long a wait lasts at most (see the type's comment).
    public static let patience: Duration = .seconds(120)

    static func answers(_ message: JSONValue, id: JSONValue?) -> Bool {
        message["id"] == id && (message["result"] != nil || message["error"] != nil)
    }
}
