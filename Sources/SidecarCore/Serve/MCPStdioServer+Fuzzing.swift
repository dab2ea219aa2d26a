/// Entry points for the fuzz target (`sidecar-fuzz`) and the in-memory test harness
/// (`TestSupport`), which frame input themselves and play the reader thread: they feed events in
/// order, wait for the calls to finish, then shut down.
/// Not part of the product's API (`@_spi(Fuzzing) import SidecarCore`).
extension MCPStdioServer {
    /// Handles one stdin event on the calling thread, exactly as the reader thread does.
    @_spi(Fuzzing) public func feed(_ event: StdinEvent) { receive(event) }

    /// Requests still waiting for their answer, open subscriptions excluded.
    @_spi(Fuzzing) public var callsInFlight: Int { router.callsInFlight }

    /// The graceful shutdown that `run()` ends with: finishes or cancels calls, completes open
    /// subscriptions, closes the upstream and flushes the output.
    @_spi(Fuzzing) public func stop(reason: String) async { await shutDown(reason: reason) }

    /// Waits until every frame queued for stdout is written, at most `timeoutNanoseconds` (shutdown
    /// itself waits one second at most; a starved machine can need longer).
    @_spi(Fuzzing) public func waitForOutput(timeoutNanoseconds: UInt64) -> Bool {
        writer.flush(timeoutNanoseconds: timeoutNanoseconds)
    }
}
