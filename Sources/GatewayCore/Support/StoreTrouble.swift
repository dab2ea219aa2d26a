import Logging
import NIOConcurrencyHelpers
import SystemSupport

/// Tells the operator, on stderr, that calls fail inside the gateway (the database down, an
/// unexpected error): one line per kind of trouble at most every 10 s, so that an outage under load
/// does not flood the log. The lines carry error descriptions only, never a call's arguments
/// (store errors never include bound values).
enum StoreTrouble {
    private static let lastReported = NIOLockedValueBox<[String: UInt64]>([:])
    static let intervalNanoseconds: UInt64 = 10_000_000_000

    static func report(_ message: String) {
        let line = message.flattenedToOneLine(limit: 300)
        let kind = String(line.prefix(40))
        let now = GatewayClock.monotonicNanoseconds()
        let due = lastReported.withLockedValue { last -> Bool in
            if let previous = last[kind], now &- previous < intervalNanoseconds { return false }
            if last.count > 100 { last.removeAll() }
            last[kind] = now
            return true
        }
        if due { Gateway.operatorLog.error("\(line)") }
    }
}
