import Logging

/// Formats each message (so hostile text runs through the logging path) and drops it.
public struct DiscardingLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init() {}

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        _ = event.message.description.utf8.count
    }
}
