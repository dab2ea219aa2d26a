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

    /// Milliseconds since the epoch of an RFC 3339 time (`2026-11-29T04:40:00.123456Z`,
    /// `…+05:30`; fractions past milliseconds are dropped), or nil when the text is not one.
    public static func milliseconds(rfc3339 text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int32? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int32 = 0
            for byte in bytes[range] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int32(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var index = 19
        var millis: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale: Int64 = 100
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                millis += Int64(bytes[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
        }
        var offsetSeconds: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-"),
            let hours = number((index + 1)..<(index + 3)), let minutes = number((index + 4)..<(index + 6))
        {
            offsetSeconds = Int64(hours * 3600 + minutes * 60) * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
        }
        var fields = tm()
        fields.tm_year = year - 1900
        fields.tm_mon = month - 1
        fields.tm_mday = day
        fields.tm_hour = hour
        fields.tm_min = minute
        fields.tm_sec = second
        return (Int64(timegm(&fields)) - offsetSeconds) * 1000 + millis
    }
}
