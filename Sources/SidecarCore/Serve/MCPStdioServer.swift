// Serve/: `agent-sidecar serve`, the MCP server on stdin/stdout that bridges every call to one
// upstream. It owns the client side of the protocol: the server's lifecycle (this file), the
// router and its method handlers (`RequestRouter`), protocol negotiation in both eras
// (`ProtocolNegotiation`), change notifications and subscriptions (`Subscriptions`), narrowing
// (`ToolNarrowing`), response framing and byte splicing (`ResponseFraming`), paired mode's stored
// tool catalog (`StoredCatalogFallback`, `ToolCatalogCache`), and the flags that build a server
// (`ServeOptions`, `BridgeConfiguration`, `PairedBridge`).
//
// Must not depend on: Setup/ (setup, status and logout build on Serve, not the reverse; the
// `SidecarSetup` extension at the end of ToolCatalogCache.swift is setup's code, waiting to move
// there), the gateway's modules, or stdout for anything but MCP messages. The server proper (the
// coordinator and its parts) sees the upstream only through `MCPUpstream` and stdin/stdout only
// through Transport/; only the bridges build a concrete upstream, with Upstream/ and Credentials/.

import AgentWire
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `agent-sidecar serve`: an MCP server on stdin/stdout that bridges every call to one upstream.
///
/// The coordinator: it builds the parts, starts the reader, the change listener and the signal
/// handlers, and shuts down once. Threads and tasks: a reader thread frames stdin and hands each
/// line to the router in arrival order; cheap requests are answered right there, the rest run as
/// one task each; one writer thread owns stdout; the curl engine thread drives every upstream
/// transfer. See docs/architecture.md.
public final class MCPStdioServer: Sendable {
    struct Lifecycle {
        var acceptingInput = true
        var listenerStarted = false
    }

    let options: ServeOptions
    let upstream: any MCPUpstream
    let logger: Logger
    let writer: StdoutWriter
    let reader: StdinLineReader
    let shutdownSignal = ShutdownLatch()
    let lifecycle = Mutex(Lifecycle())
    let listener = Mutex<Task<Void, Never>?>(nil)

    let negotiation: ProtocolNegotiation
    let narrowing: ToolNarrowing
    let subscriptions: Subscriptions
    let router: RequestRouter

    /// - Parameters:
    ///   - catalog: Paired mode's stored catalog. With one, `tools/list` always succeeds: when the
    ///     upstream fails or is slow it is answered from the catalog, `initialize`'s instructions say
    ///     why, and the first call that goes through again checks the catalog and sends
    ///     `notifications/tools/list_changed` if it changed.
    public init(
        options: ServeOptions, upstream: any MCPUpstream, logger: Logger, input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO,
        catalog: ToolCatalogMemory? = nil
    ) {
        self.options = options
        self.upstream = upstream
        self.logger = logger
        let latch = shutdownSignal
        let writer = StdoutWriter(fileDescriptor: output) { latch.trigger("stdout closed") }
        self.writer = writer
        self.reader = StdinLineReader(fileDescriptor: input, maximumLineBytes: options.maximumMessageBytes)
        let negotiation = ProtocolNegotiation(extraInstructions: options.extraInstructions)
        let narrowing = ToolNarrowing(readOnly: options.readOnly, excludedTools: options.excludedTools, upstream: upstream)
        let subscriptions = Subscriptions(writer: writer, negotiation: negotiation, narrowing: narrowing, logger: logger)
        let catalogFallback = catalog.map {
            StoredCatalogFallback(
                catalog: $0, upstream: upstream, options: options, negotiation: negotiation, subscriptions: subscriptions, logger: logger)
        }
        self.negotiation = negotiation
        self.narrowing = narrowing
        self.subscriptions = subscriptions
        self.router = RequestRouter(
            options: options, upstream: upstream, logger: logger, writer: writer, negotiation: negotiation, narrowing: narrowing,
            subscriptions: subscriptions, catalogFallback: catalogFallback)
    }

    // MARK: Lifecycle

    /// Serves until stdin closes or SIGTERM/SIGINT arrives, then shuts down gracefully.
    /// Returns the process exit code.
    public func run() async -> Int32 {
        LargeAllocations.returnToTheSystemWhenFreed()
        installSignalHandlers()
        // Meet the upstream while the client starts: initialize can then pass on its instructions.
        Task { [self] in
            if let handshake = try? await upstream.handshake() { startChangeListener(handshake) }
        }
        reader.start { [self] event in self.receive(event) }
        let reason = await shutdownSignal.wait()
        await shutDown(reason: reason)
        return 0
    }

    func installSignalHandlers() {
        let latch = shutdownSignal
        ShutdownSignals.install { number in latch.trigger(number == SIGTERM ? "SIGTERM" : "SIGINT") }
    }

    /// Stops reading, lets calls finish for up to `shutdownGrace`, cancels the rest, completes open
    /// subscriptions, closes the upstream (bounded) and flushes stdout (bounded).
    func shutDown(reason: String) async {
        logger.debug("shutting down: \(reason)")
        lifecycle.withLock { $0.acceptingInput = false }
        let deadline = ContinuousClock.now + options.shutdownGrace
        while ContinuousClock.now < deadline {
            if router.callsInFlight == 0 { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        // Past the grace: cancel what is left; end open subscriptions with their completion result.
        let leftover = router.drain()
        if !leftover.isEmpty { logger.info("cancelling \(leftover.count) call(s) still running after the grace period") }
        for task in leftover { task.cancel() }
        subscriptions.completeAll()
        listener.withLock { $0?.cancel() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.upstream.close(timeout: .milliseconds(150)) }
            group.addTask { try? await Task.sleep(for: .milliseconds(250)) }
            await group.next()
            group.cancelAll()
        }
        writer.close()
        writer.flush(timeoutNanoseconds: 1_000_000_000)
    }

    /// Relays the upstream's change notifications for the life of the server, once, if it offers them.
    func startChangeListener(_ handshake: UpstreamHandshake) {
        guard handshake.offersToolListChanges else { return }
        let start = lifecycle.withLock { lifecycle -> Bool in
            defer { lifecycle.listenerStarted = true }
            return !lifecycle.listenerStarted
        }
        guard start else { return }
        let task = Task { [self] in
            await upstream.listenForChanges { message in self.subscriptions.relayUnsolicited(message) }
        }
        listener.withLock { $0 = task }
    }

    // MARK: Input

    /// One event of the reader thread.
    func receive(_ event: StdinEvent) {
        switch event {
        case .endOfInput:
            shutdownSignal.trigger("end of input")
        case .oversized(let count):
            guard lifecycle.withLock({ $0.acceptingInput }) else { return }
            logger.warning("skipped a \(count)-byte message over the \(options.maximumMessageBytes)-byte limit")
            router.sendWithoutID(
                code: JSONRPCErrorCode.invalidRequest,
                message:
                    "message of \(count) bytes exceeds the limit of \(options.maximumMessageBytes) bytes; send smaller messages or raise --max-message-bytes"
            )
        case .line(let bytes):
            guard lifecycle.withLock({ $0.acceptingInput }) else { return }
            router.receiveLine(bytes)
        }
    }
}
