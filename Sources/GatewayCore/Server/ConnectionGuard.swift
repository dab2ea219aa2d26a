import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes

/// Bounds on the gateway's HTTP connections, so that connections which never finish a request
/// cannot use up the process's descriptors (see docs/security.md, "Connections").
struct ConnectionLimits: Sendable, Equatable {
    /// A connection's first request header must be complete this long after the connection was
    /// accepted; a later request's header, this long after its first byte arrived.
    var headerTimeout: TimeAmount
    /// A request body must be complete this long after its header.
    var bodyTimeout: TimeAmount
    /// A keep-alive connection with no request in progress is closed after this long; the same
    /// bound applies to writing a response to a client that does not read it.
    var idleTimeout: TimeAmount
    /// Open connections in total.
    var maxConnections: Int
    /// Open connections per client address (an IPv4 address, or an IPv6 /64).
    var maxConnectionsPerAddress: Int

    init(
        headerTimeout: TimeAmount = .seconds(10), bodyTimeout: TimeAmount = .seconds(30), idleTimeout: TimeAmount = .seconds(60),
        maxConnections: Int = 1024, maxConnectionsPerAddress: Int = 128
    ) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
    }
}

/// The client address as the limits count it: an IPv4 address, the /64 prefix of an IPv6 address
/// (one host usually holds a whole /64), `unix` for a Unix socket.
enum ClientAddress {
    static func key(_ address: SocketAddress?) -> String {
        switch address {
        case .v4(let v4)?:
            return address?.ipAddress ?? "\(v4)"
        case .v6(let v6)?:
            var raw = v6.address.sin6_addr
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
                return bytes[12..<16].map { String($0) }.joined(separator: ".")
            }
            let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        case .unixDomainSocket?:
            return "unix"
        case nil:
            return "unknown"
        }
    }
}

/// Every open connection of one server, with its client address and whether it is idle (no
/// request in progress). Admits or refuses new connections against the caps; at a cap, the new
/// connection takes the place of the connection in the same scope that has been idle the longest,
/// so a flood of connections that never send a request cannot keep out one that does.
final class ConnectionRegistry: Sendable {
    struct Entry {
        let address: String
        let channel: any Channel
        /// When the connection last became idle; `nil` while a request is in progress.
        var idleSince: NIODeadline?
        /// Whether a request was ever read on it (a keep-alive connection, rather than one that
        /// never sent a request); those are replaced last.
        var servedAny = false
    }

    struct State {
        var entries: [UInt64: Entry] = [:]
        var perAddress: [String: Int] = [:]
        var nextID: UInt64 = 0
        // Counted since the last log line.
        var refused = 0
        var evicted = 0
        var timedOut = 0
        var lastReport = NIODeadline.uptimeNanoseconds(0)
    }

    enum Admission {
        case admitted(UInt64)
        case refused
    }

    let limits: ConnectionLimits
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(limits: ConnectionLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    /// Open connections, in total and for one address (for tests and logs).
    var openCount: Int { state.withLockedValue { $0.entries.count } }

    func admit(address: String, channel: any Channel, now: NIODeadline) -> Admission {
        let (admission, victim) = state.withLockedValue { state -> (Admission, (any Channel)?) in
            var victim: (id: UInt64, entry: Entry)?
            if state.perAddress[address, default: 0] >= limits.maxConnectionsPerAddress {
                victim = longestIdle(state.entries, now: now) { $0.address == address }
                if victim == nil {
                    state.refused += 1
                    return (.refused, nil)
                }
            } else if state.entries.count >= limits.maxConnections {
                victim = longestIdle(state.entries, now: now) { _ in true }
                if victim == nil {
                    state.refused += 1
                    return (.refused, nil)
                }
            }
            if let victim {
                Self.remove(victim.id, from: &state)
                state.evicted += 1
            }
            let id = state.nextID
            state.nextID += 1
            state.entries[id] = Entry(address: address, channel: channel, idleSince: now)
            state.perAddress[address, default: 0] += 1
            return (.admitted(id), victim?.entry.channel)
        }
        victim?.close(promise: nil)
        report(now: now)
        return admission
    }

    func release(_ id: UInt64) {
        state.withLockedValue { Self.remove(id, from: &$0) }
    }

    func setIdle(_ id: UInt64, since: NIODeadline?) {
        state.withLockedValue { state in
            state.entries[id]?.idleSince = since
            if since == nil { state.entries[id]?.servedAny = true }
        }
    }

    func countTimeout(now: NIODeadline) {
        state.withLockedValue { $0.timedOut += 1 }
        report(now: now)
    }

    private static func remove(_ id: UInt64, from state: inout State) {
        guard let entry = state.entries.removeValue(forKey: id) else { return }
        let left = state.perAddress[entry.address, default: 1] - 1
        state.perAddress[entry.address] = left > 0 ? left : nil
    }

    /// The connection to replace: among the idle ones in scope, one that never sent a request if
    /// there is any (and is past its grace), and of those the one idle the longest.
    /// A connection is not replaced in the first moments after its accept (its client is most
    /// likely sending its request right now): half the header timeout, at most one second.
    var replacementGrace: TimeAmount { min(.seconds(1), .nanoseconds(limits.headerTimeout.nanoseconds / 2)) }

    private func longestIdle(_ entries: [UInt64: Entry], now: NIODeadline, where matches: (Entry) -> Bool) -> (id: UInt64, entry: Entry)? {
        var best: (id: UInt64, entry: Entry, since: NIODeadline)?
        for (id, entry) in entries {
            guard let since = entry.idleSince, matches(entry) else { continue }
            if !entry.servedAny, now - since < replacementGrace { continue }
            if let current = best {
                if entry.servedAny != current.entry.servedAny {
                    if entry.servedAny { continue }
                } else if since >= current.since {
                    continue
                }
            }
            best = (id, entry, since)
        }
        return best.map { ($0.id, $0.entry) }
    }

    /// At most one log line every ten seconds, with what the limits did since the last one.
    private func report(now: NIODeadline) {
        let line = state.withLockedValue { state -> (refused: Int, evicted: Int, timedOut: Int, open: Int)? in
            guard state.refused + state.evicted + state.timedOut > 0, now - state.lastReport >= .seconds(10) else { return nil }
            defer {
                state.refused = 0
                state.evicted = 0
                state.timedOut = 0
                state.lastReport = now
            }
            return (state.refused, state.evicted, state.timedOut, state.entries.count)
        }
        guard let line else { return }
        logger.warning(
            "connection limits applied",
            metadata: [
                "refused": "\(line.refused)", "closedIdleForNew": "\(line.evicted)", "timedOut": "\(line.timedOut)", "open": "\(line.open)",
                "maxConnections": "\(limits.maxConnections)", "maxConnectionsPerAddress": "\(limits.maxConnectionsPerAddress)",
            ])
    }
}

/// The state of one connection, shared by its two handlers (one in front of the HTTP decoder that
/// sees raw bytes arrive, one behind it that sees request heads and response ends) and confined to
/// the connection's event loop. It keeps one timer for the current deadline.
final class ConnectionWatch {
    let registry: ConnectionRegistry
    var limits: ConnectionLimits { registry.limits }
    var channel: (any Channel)?
    var id: UInt64?
    var admitted: Bool?

    var acceptedAt = NIODeadline.now()
    /// Whether a request has been seen on this connection yet.
    var servedAny = false
    /// Heads read whose response end has not been written.
    var requestsInProgress = 0
    /// A head was read and its end not yet.
    var readingRequest = false
    var headAt = NIODeadline.now()
    var requestEndAt = NIODeadline.now()
    var idleSince = NIODeadline.now()
    /// The first byte of the next request, while waiting for its head.
    var firstByteAt: NIODeadline?

    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(registry: ConnectionRegistry) { self.registry = registry }

    /// When the connection must have made progress by, or `nil` while the gateway is working.
    var deadline: NIODeadline? {
        if readingRequest { return headAt + limits.bodyTimeout }
        if requestsInProgress > 0 { return requestEndAt + limits.idleTimeout }
        if !servedAny { return acceptedAt + limits.headerTimeout }
        if let firstByteAt { return firstByteAt + limits.headerTimeout }
        return idleSince + limits.idleTimeout
    }

    /// Admits the connection once; `false` when it was refused.
    func activate(context: ChannelHandlerContext) -> Bool {
        if let admitted { return admitted }
        let now = NIODeadline.now()
        acceptedAt = now
        idleSince = now
        channel = context.channel
        switch registry.admit(address: ClientAddress.key(context.channel.remoteAddress), channel: context.channel, now: now) {
        case .admitted(let id):
            self.id = id
            admitted = true
            schedule()
            return true
        case .refused:
            admitted = false
            return false
        }
    }

    func deactivate() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        if let id { registry.release(id) }
        id = nil
        channel = nil
    }

    func bytesArrived() {
        if requestsInProgress == 0, !readingRequest, firstByteAt == nil, servedAny {
            firstByteAt = .now()
            schedule()
        }
    }

    func headRead() {
        let now = NIODeadline.now()
        servedAny = true
        readingRequest = true
        requestsInProgress += 1
        headAt = now
        firstByteAt = nil
        if let id { registry.setIdle(id, since: nil) }
        schedule()
    }

    func endRead() {
        readingRequest = false
        requestEndAt = .now()
        if requestsInProgress == 0 { becomeIdle() } else { schedule() }
    }

    func responseEnded() {
        requestsInProgress = max(0, requestsInProgress - 1)
        // A response may end before its request body was read in full; the end of the body makes it idle then.
        if requestsInProgress == 0, !readingRequest { becomeIdle() }
    }

    private func becomeIdle() {
        let now = NIODeadline.now()
        idleSince = now
        firstByteAt = nil
        if let id { registry.setIdle(id, since: now) }
        schedule()
    }

    /// Makes sure a timer fires no later than the current deadline.
    private func schedule() {
        guard let channel, let deadline else { return }
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = channel.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timer = nil
            self.timerDeadline = nil
            self.check()
        }
    }

    private func check() {
        guard let channel else { return }
        let now = NIODeadline.now()
        if let deadline, deadline <= now {
            registry.countTimeout(now: now)
            channel.close(promise: nil)
            return
        }
        schedule()
    }
}

/// The first handler of a connection: admits it against the caps (answering `503` and closing
/// when refused), notes when request bytes arrive, and releases the connection when it closes.
final class ConnectionAdmissionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let watch: ConnectionWatch
    init(watch: ConnectionWatch) { self.watch = watch }

    static let refusal: String = {
        let body =
            #"{"error":{"code":"too_many_connections","message":"the gateway has too many open connections from this address or in total; retry in a moment","retryable":true}}"#
        return
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: \(body.utf8.count)\r\n\r\n"
            + body
    }()

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    private func admit(context: ChannelHandlerContext) {
        guard !watch.activate(context: context) else { return }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: Self.refusal)), promise: nil)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        watch.bytesArrived()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.deactivate()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watch.deactivate()
    }
}

/// Sits behind the HTTP decoder: tells the connection's watch when a request head and end are
/// read and when a response ends.
final class RequestProgressHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let watch: ConnectionWatch
    init(watch: ConnectionWatch) { self.watch = watch }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: watch.headRead()
        case .body: break
        case .end: watch.endRead()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { watch.responseEnded() }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable) extension ConnectionWatch: Sendable {}
@available(*, unavailable) extension ConnectionAdmissionHandler: Sendable {}
@available(*, unavailable) extension RequestProgressHandler: Sendable {}

/// Hummingbird's HTTP/1.1 child channel with the connection limits in front of it.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let registry: ConnectionRegistry

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let watch = ConnectionWatch(registry: registry)
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionAdmissionHandler(watch: watch), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let bound = NIOLoopBound(watch, eventLoop: channel.eventLoop)
        var configuration = base.configuration
        configuration.additionalChannelHandlers = { [RequestProgressHandler(watch: bound.value)] }
        return HTTP1Channel(responder: base.responder, configuration: configuration).setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }

    /// A server builder for `Application(server:)`.
    static func builder(registry: ConnectionRegistry, configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GuardedHTTP1Channel(base: HTTP1Channel(responder: responder, configuration: configuration), registry: registry)
        }
    }
}
