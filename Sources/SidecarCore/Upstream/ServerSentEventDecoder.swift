/// One server-sent event.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String
    public var data: [UInt8]
}

/// An incremental `text/event-stream` decoder (WHATWG rules): lines end with LF, CRLF or CR,
/// even when a CRLF is split across chunks; comment lines (`:`) are ignored; `data` lines join
/// with LF; an empty line dispatches the event.
public struct ServerSentEventDecoder: Sendable {
    var line: [UInt8] = []
    var data: [UInt8] = []
    var hasData = false
    var eventName = ""
    var skipLineFeed = false
    let maximumEventBytes: Int

    public init(maximumEventBytes: Int = 64 * 1024 * 1024) { self.maximumEventBytes = maximumEventBytes }

    public struct EventTooLarge: Error {}

    public mutating func feed(_ bytes: [UInt8], emit: (ServerSentEvent) throws -> Void) throws {
        var start = 0
        var index = 0
        if skipLineFeed, !bytes.isEmpty {
            skipLineFeed = false
            if bytes[0] == 0x0A {
                start = 1
                index = 1
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D {
                line.append(contentsOf: bytes[start..<index])
                try endLine(emit: emit)
                if byte == 0x0D {
                    if index + 1 < bytes.count {
                        if bytes[index + 1] == 0x0A { index += 1 }
                    } else {
                        skipLineFeed = true
                    }
                }
                start = index + 1
            }
            index += 1
        }
        if start < bytes.count { line.append(contentsOf: bytes[start..<bytes.count]) }
        if line.count + data.count > maximumEventBytes { throw EventTooLarge() }
    }

    mutating func endLine(emit: (ServerSentEvent) throws -> Void) throws {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData {
                let event = ServerSentEvent(event: eventName.isEmpty ? "message" : eventName, data: data)
                data = []
                hasData = false
                eventName = ""
                try emit(event)
            } else {
                eventName = ""
            }
            return
        }
        if line[0] == UInt8(ascii: ":") { return }
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = line[...]
            value = []
        }
        switch String(decoding: field, as: UTF8.self) {
        case "data":
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        case "event":
            eventName = String(decoding: value, as: UTF8.self)
        default:
            break  // id, retry and unknown fields do not matter here
        }
    }
}
