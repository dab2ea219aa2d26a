import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the gateway reads the time from: the system clock, or a clock a test moves by hand.
public struct GatewayClock: Sendable {
    private let milliseconds: @Sendable () -> Int64

    public init(milliseconds: @escaping @Sendable () -> Int64) { self.milliseconds = milliseconds }

    public static let system = GatewayClock {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// Milliseconds since the Unix epoch.
    public func nowMilliseconds() -> Int64 { milliseconds() }
    public func nowSeconds() -> Int64 { milliseconds() / 1000 }

    /// A monotonic reading in nanoseconds, for latencies.
    public static func monotonicNanoseconds() -> UInt64 { SystemSupport.monotonicNanoseconds() }
}

/// RFC 3339 UTC timestamps (`2026-11-21T03:00:00Z`, or with milliseconds).
public enum Timestamp {
    public static func rfc3339(milliseconds: Int64, fractional: Bool = false) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text =
            "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if fractional { text += "." + pad(Int32(milliseconds % 1000), 3) }
        return text + "Z"
    }
}
