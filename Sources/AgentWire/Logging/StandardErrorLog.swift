import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How both binaries write their logs on stderr: swift-log's text lines (the default), or one JSON
/// object per line for a log collector (`--log-format json`; docs/operations.md, "Logs").
public enum LogFormat: String, CaseIterable, Sendable {
    case text, json
}

/// Why `--log-level` or `--log-format` was refused: one line with the choices.
public struct LogSettingError: Error, CustomStringConvertible {
    public let description: String
}

/// Sets up swift-log once per process: every logger writes to stderr in `format`, at `level` and above.
public enum StandardErrorLog {
    /// Reads `--log-level` and `--log-format` (or, when a flag is absent, `PREFIX_LOG_LEVEL` and
    /// `PREFIX_LOG_FORMAT`; else info and text), then bootstraps. Returns the level.
    public static func bootstrap(level: String?, format: String?, environmentPrefix: String) throws(LogSettingError) -> Logger.Level {
        func environment(_ name: String) -> String? { getenv("\(environmentPrefix)_\(name)").map { String(cString: $0) } }
        let levelText = level ?? environment("LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw LogSettingError(
                description: "unknown log level '\(levelText)'; use one of trace, debug, info, notice, warning, error, critical")
        }
        let formatText = format ?? environment("LOG_FORMAT") ?? "text"
        guard let format = LogFormat(rawValue: formatText.lowercased()) else {
            throw LogSettingError(description: "unknown log format '\(formatText)'; use text or json")
        }
        bootstrap(format: format, level: level)
        return level
    }

    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                return JSONLogHandler(label: label, logLevel: level)
            }
        }
    }
}

/// One JSON object per line on stderr, written with one `write(2)`:
/// `{"time":"2026-11-29T10:50:01.123Z","level":"info","logger":"agent-gateway","message":"…", …}`,
/// then the metadata as members of their own (a key that would shadow one of the four is written
/// as `metadata.KEY`). Values that are not strings, lists or dictionaries are written as their
/// description. A message is cut at ``maximumMessageBytes``, so one line stays bounded.
public struct JSONLogHandler: LogHandler {
    public static let maximumMessageBytes = 8192
    static let reserved: Set<String> = ["time", "level", "logger", "message"]

    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let descriptor: Int32

    public init(label: String, logLevel: Logger.Level = .info, descriptor: Int32 = 2) {
        self.label = label
        self.logLevel = logLevel
        self.descriptor = descriptor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        var line = Self.line(
            time: Self.now(), level: event.level, label: label, message: event.message.description, metadata: merged)
        line.append(0x0A)
        line.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    /// The line for one event, without its newline.
    public static func line(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(128 + message.utf8.count)
        output.append(contentsOf: Array(#"{"time":"#.utf8))
        JSONSerializer.writeString(time, into: &output)
        output.append(contentsOf: Array(#","level":"#.utf8))
        JSONSerializer.writeString(level.rawValue, into: &output)
        output.append(contentsOf: Array(#","logger":"#.utf8))
        JSONSerializer.writeString(label, into: &output)
        output.append(contentsOf: Array(#","message":"#.utf8))
        JSONSerializer.writeString(bounded(message), into: &output)
        for key in metadata.keys.sorted() {
            output.append(UInt8(ascii: ","))
            JSONSerializer.writeString(reserved.contains(key) ? "metadata.\(key)" : key, into: &output)
            output.append(UInt8(ascii: ":"))
            JSONSerializer.write(json(metadata[key]!), into: &output)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }

    static func bounded(_ message: String) -> String {
        guard message.utf8.count > maximumMessageBytes else { return message }
        return String(decoding: message.utf8.prefix(maximumMessageBytes), as: UTF8.self) + "…"
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): .string(bounded(text))
        case .stringConvertible(let convertible): .string(bounded(convertible.description))
        case .array(let values): .array(values.map(json))
        case .dictionary(let members):
            .object(JSONObject(members: members.keys.sorted().map { JSONObject.Member(key: $0, value: json(members[$0]!)) }))
        }
    }

    /// The wall-clock time as RFC 3339 in UTC with milliseconds.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliseconds = Int(spec.tv_nsec / 1_000_000)
        let fraction = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}
