import Hummingbird
import Logging
import NIOCore

/// `GET /metrics` (Prometheus text format) on a listener of its own (`serve --metrics-port`,
/// `--metrics-host` 127.0.0.1 by default), never on the gateway's public port: what a scrape shows
/// (tool names, outcomes, counts) is for the operator, and a listener of its own cannot be exposed
/// by a reverse proxy rule written for the gateway. It answers nothing else.
public struct GatewayMetricsServer: Sendable {
    public let gateway: Gateway

    public init(gateway: Gateway) { self.gateway = gateway }

    public func makeApplication(
        host: String, port: Int, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        let gateway = self.gateway
        router.get("metrics") { _, _ in
            let text = await gateway.metricsExposition()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "agent-gateway-metrics"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) }, logger: logger)
    }
}
