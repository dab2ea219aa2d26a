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
