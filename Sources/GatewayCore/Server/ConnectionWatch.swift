import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes

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
