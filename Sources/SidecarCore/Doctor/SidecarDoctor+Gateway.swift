import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The checks that ask the gateway: reachable, the clocks agree, a session can be minted.
extension SidecarDoctor {
    func gatewayCheck(_ gateway: GatewayOrigin) async -> (check: DoctorCheck, date: String?) {
        let url = gateway.url("/healthz")
        let started = ContinuousClock.now
        do {
            let response = try await transport.send(
                HTTPRequest(method: "GET", url: url, headers: [HTTPHeader("Accept", "application/json")], timeout: timeout))
            let elapsed = (ContinuousClock.now - started).milliseconds
            let tls = gateway.origin.hasPrefix("https://") ? ", TLS certificate valid for the host" : " (plain HTTP on loopback)"
            let date = response.headers.value(for: "date")
            guard response.status < 500 else {
                return (
                    DoctorCheck(
                        "gateway", .failed, "\(gateway.baseURL) answered HTTP \(response.status) to /healthz",
                        fix: "the gateway is up but failing: ask its administrator"), date
                )
            }
            return (DoctorCheck("gateway", .ok, "\(gateway.baseURL) answered /healthz (HTTP \(response.status)) in \(elapsed) ms\(tls)"), date)
        } catch let error as HTTPClientError {
            let failure = UpstreamFailure.from(error, upstream: gateway.baseURL, timeout: timeout, peer: "gateway")
            let fix: String
            switch error.code {
            case .tlsFailure:
                fix =
                    "if the gateway uses a private CA, run `agent-sidecar setup --ca-file CA.pem` (the profile keeps it); otherwise ask the gateway's administrator about its certificate"
            case .hostNotFound, .connectTimedOut, .connectionRefused:
                fix = "check that the gateway runs at \(gateway.baseURL), your network, and HTTPS_PROXY / NO_PROXY"
            default:
                fix = "retry; if it persists, check the gateway and your network"
            }
            return (DoctorCheck("gateway", .failed, failure.message, fix: fix), nil)
        } catch {
            return (DoctorCheck("gateway", .failed, "the request to \(gateway.baseURL) failed: \(error)", fix: "retry, then check your network"), nil)
        }
    }

    func clockCheck(_ date: String?) -> DoctorCheck {
        guard let date, let gatewayTime = HTTPDate.parse(date) else {
            return DoctorCheck(
                "clock", .warning, "the gateway sent no usable Date header, so the clock skew is unknown",
                fix: "make sure this machine's clock is synchronised (NTP); the gateway refuses sessions 5 minutes off")
        }
        let skew = Timestamp.nowSeconds() - gatewayTime
        let size = abs(skew)
        let direction = skew == 0 ? "in step with" : skew > 0 ? "\(size) s ahead of" : "\(size) s behind"
        if size >= Self.refusedSkewSeconds {
            return DoctorCheck(
                "clock", .failed, "this machine's clock is \(direction) the gateway's: it refuses sessions from 300 s",
                fix: "synchronise the clock (timedatectl set-ntp true, or your OS's time settings)")
        }
        if size >= Self.warnedSkewSeconds {
            return DoctorCheck(
                "clock", .warning, "this machine's clock is \(direction) the gateway's; sessions are refused from 300 s",
                fix: "synchronise the clock (timedatectl set-ntp true)")
        }
        return DoctorCheck("clock", .ok, "\(direction) the gateway's clock (to the second; sessions are refused from 300 s)")
    }

    func sessionCheck(api: GatewayAPIClient, key: DeviceKey, profile: SidecarProfile) async -> DoctorCheck {
        var api = api
        api.timeout = timeout
        let session: MintedSession
        do {
            session = try await api.mintSession(deviceKey: key, deviceID: profile.deviceID)
        } catch {
            let refused = error.gatewayError?.refusesDevice ?? false
            return DoctorCheck(
                "session", .failed, "the gateway gave no session: \(error.message)",
                fix: refused ? "ask the agent's owner for a new pairing code, then run `agent-sidecar setup --profile \(profile.name)`" : "retry")
        }
        let listed = await MCPToolProbe(transport: transport, gateway: api.gateway, timeout: timeout).listTools(token: session.token)
        try? await api.endSession(token: session.token)
        switch listed {
        case .success(let names):
            if names.isEmpty {
                return DoctorCheck(
                    "session", .warning, "minted a session (valid \(session.expiresInSeconds) s) and ended it, but the agent has no tools",
                    fix: "ask the agent's owner to grant it a project")
            }
            return DoctorCheck(
                "session", .ok, "minted a session (valid \(session.expiresInSeconds) s), listed \(names.count) tools over MCP, ended it")
        case .failure(let problem):
            return DoctorCheck(
                "session", .failed, "minted a session, but tools/list failed: \(problem.message)",
                fix: "retry; if it persists, report it to the gateway's administrator")
        }
    }
}
