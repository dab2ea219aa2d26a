/// Finds tables in a TOML document line by line, without parsing values: enough to replace or
/// remove one table and leave every other byte alone.
///
/// It understands table headers (`[a.b]`, `[[a.b]]`, bare, `"basic"` and `'literal'` keys with
/// spaces around the dots), comments, and values that span lines (multi-line strings and arrays,
/// inline tables), so a `[` inside a string or an array is never taken for a header.
public enum TOMLTableLocator {
    /// What a line of the document is.
    public enum LineKind: Equatable, Sendable {
        /// A table header: `[path]`, or `[[path]]` when `isArray`.
        case header(path: [String], isArray: Bool)
        /// The first line of a `key = value` pair; `keyPath` is relative to the current table.
        case keyValue(keyPath: [String])
        /// A line inside a value that began on an earlier line.
        case continuation
        /// Empty, white space or a comment.
        case blankOrComment
        /// Something this locator does not understand (the file may not be valid TOML).
        case unrecognized
    }

    /// One line: its bytes (with the line terminator) and what it is.
    public struct Line: Equatable, Sendable {
        public let range: Range<Int>
        public let kind: LineKind
        /// The table the line is in (`[]` for the root table).
        public let table: [String]
    }

    /// Splits the document into classified lines.
    public static func lines(_ text: [UInt8]) -> [Line] {
        var scanner = Scanner(bytes: text)
        return scanner.scan()
    }

    /// Whether the document ends inside a value (an unclosed string, array or inline table): not
    /// valid TOML, though every line may look like one.
    public static func endsInsideValue(_ text: [UInt8]) -> Bool {
        var scanner = Scanner(bytes: text)
        _ = scanner.scan()
        return scanner.endedInsideValue
    }

    /// The line ranges (as indexes into `lines`) of every table whose path starts with `prefix`,
    /// each from its header to its last content line (trailing blank and comment lines, which
    /// usually introduce the next table, stay outside).
    public static func tableRegions(_ lines: [Line], prefix: [String]) -> [Range<Int>] {
        var regions: [Range<Int>] = []
        var index = 0
        while index < lines.count {
            guard case .header(let path, _) = lines[index].kind, path.starts(with: prefix) else {
                index += 1
                continue
            }
            var end = index + 1
            while end < lines.count {
                if case .header = lines[end].kind { break }
                end += 1
            }
            var last = end
            while last > index + 1, lines[last - 1].kind == .blankOrComment { last -= 1 }
            // A table of ours right after another one of ours, with only blank lines and comments
            // between them, is one region: those lines are inside our part of the file.
            if let previous = regions.last, lines[previous.upperBound..<index].allSatisfy({ $0.kind == .blankOrComment }) {
                regions[regions.count - 1] = previous.lowerBound..<last
            } else {
                regions.append(index..<last)
            }
            index = end
        }
        return regions
    }

    // MARK: - Scanning

    private struct Scanner {
        let bytes: [UInt8]
        var position = 0
        /// Set by `scan()`: a multi-line string, array or inline table was still open at the end.
        var endedInsideValue = false

        init(bytes: [UInt8]) { self.bytes = bytes }

        enum ValueState {
            case normal, basic, literal, multilineBasic, multilineLiteral
        }

        mutating func scan() -> [Line] {
            var result: [Line] = []
            var table: [String] = []
            var state = ValueState.normal
            var depth = 0
            while position < bytes.count {
                let start = position
                let lineEnd = bytes[position...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? bytes.count
                var kind: LineKind
                if state != .normal || depth > 0 {
                    kind = .continuation
                    scanValue(until: lineEnd, state: &state, depth: &depth)
                } else {
                    skipSpaces(until: lineEnd)
                    if position >= lineEnd || isLineEnd(bytes[position]) || bytes[position] == UInt8(ascii: "#") {
                        kind = .blankOrComment
                    } else if bytes[position] == UInt8(ascii: "[") {
                        if let header = parseHeader(until: lineEnd) {
                            kind = .header(path: header.path, isArray: header.isArray)
                            table = header.path
                        } else {
                            kind = .unrecognized
                        }
                    } else if let key = parseKey(until: lineEnd, terminator: UInt8(ascii: "=")) {
                        position += 1  // the "="
                        kind = .keyValue(keyPath: key)
                        scanValue(until: lineEnd, state: &state, depth: &depth)
                    } else {
                        kind = .unrecognized
                    }
                }
                result.append(Line(range: start..<lineEnd, kind: kind, table: table))
                position = lineEnd
                // A basic or literal single-line string cannot cross a line end.
                if state == .basic || state == .literal { state = .normal }
            }
            endedInsideValue = state != .normal || depth > 0
            return result
        }

        func isLineEnd(_ byte: UInt8) -> Bool { byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") }

        mutating func skipSpaces(until end: Int) {
            while position < end, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t") { position += 1 }
        }

        func hasPrefix(_ text: String, at index: Int, before end: Int) -> Bool {
            let needle = Array(text.utf8)
            guard index + needle.count <= end else { return false }
            return Array(bytes[index..<index + needle.count]) == needle
        }

        /// `[a.b]` or `[[a.b]]` followed only by white space and a comment.
        mutating func parseHeader(until end: Int) -> (path: [String], isArray: Bool)? {
            let isArray = hasPrefix("[[", at: position, before: end)
            position += isArray ? 2 : 1
            guard let path = parseKey(until: end, terminator: UInt8(ascii: "]")) else { return nil }
            position += 1
            if isArray {
                guard position < end, bytes[position] == UInt8(ascii: "]") else { return nil }
                position += 1
            }
            skipSpaces(until: end)
            guard position >= end || isLineEnd(bytes[position]) || bytes[position] == UInt8(ascii: "#") else { return nil }
            return (path, isArray)
        }

        /// A dotted key up to `terminator` (left at `terminator`), or `nil`.
        mutating func parseKey(until end: Int, terminator: UInt8) -> [String]? {
            var path: [String] = []
            while true {
                skipSpaces(until: end)
                guard position < end else { return nil }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    guard let key = parseBasicKey(until: end) else { return nil }
                    path.append(key)
                } else if byte == UInt8(ascii: "'") {
                    position += 1
                    guard let close = bytes[position..<end].firstIndex(of: UInt8(ascii: "'")) else { return nil }
                    path.append(String(decoding: bytes[position..<close], as: UTF8.self))
                    position = close + 1
                } else {
                    let start = position
                    while position < end, isBareKeyByte(bytes[position]) { position += 1 }
                    guard position > start else { return nil }
                    path.append(String(decoding: bytes[start..<position], as: UTF8.self))
                }
                skipSpaces(until: end)
                guard position < end else { return nil }
                if bytes[position] == UInt8(ascii: ".") {
                    position += 1
                    continue
                }
                return bytes[position] == terminator ? path : nil
            }
        }

        func isBareKeyByte(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }

        /// A `"basic"` key with its escapes decoded.
        mutating func parseBasicKey(until end: Int) -> String? {
            position += 1
            var decoded: [UInt8] = []
            while position < end {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    position += 1
                    return String(decoding: decoded, as: UTF8.self)
                }
                if byte == UInt8(ascii: "\\"), position + 1 < end {
                    let escaped = bytes[position + 1]
                    position += 2
                    switch escaped {
                    case UInt8(ascii: "n"): decoded.append(0x0A)
                    case UInt8(ascii: "t"): decoded.append(0x09)
                    case UInt8(ascii: "r"): decoded.append(0x0D)
                    case UInt8(ascii: "b"): decoded.append(0x08)
                    case UInt8(ascii: "f"): decoded.append(0x0C)
                    case UInt8(ascii: "u"), UInt8(ascii: "U"):
                        let length = escaped == UInt8(ascii: "u") ? 4 : 8
                        guard position + length <= end,
                            let value = UInt32(String(decoding: bytes[position..<position + length], as: UTF8.self), radix: 16),
                            let scalar = Unicode.Scalar(value)
                        else { return nil }
                        decoded.append(contentsOf: Array(String(Character(scalar)).utf8))
                        position += length
                    default: decoded.append(escaped)
                    }
                    continue
                }
                decoded.append(byte)
                position += 1
            }
            return nil
        }

        /// Follows a value through strings and brackets up to `end`, leaving `state`/`depth` set
        /// when the value continues on the next line.
        mutating func scanValue(until end: Int, state: inout ValueState, depth: inout Int) {
            while position < end {
                let byte = bytes[position]
                switch state {
                case .normal:
                    if byte == UInt8(ascii: "#") {
                        position = end
                        return
                    }
                    if hasPrefix("\"\"\"", at: position, before: end) {
                        state = .multilineBasic
                        position += 3
                    } else if hasPrefix("'''", at: position, before: end) {
                        state = .multilineLiteral
                        position += 3
                    } else if byte == UInt8(ascii: "\"") {
                        state = .basic
                        position += 1
                    } else if byte == UInt8(ascii: "'") {
                        state = .literal
                        position += 1
                    } else {
                        if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1 }
                        if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") { depth = max(0, depth - 1) }
                        position += 1
                    }
                case .basic:
                    if byte == UInt8(ascii: "\\") {
                        position += 2
                    } else {
                        if byte == UInt8(ascii: "\"") { state = .normal }
                        position += 1
                    }
                case .literal:
                    if byte == UInt8(ascii: "'") { state = .normal }
                    position += 1
                case .multilineBasic:
                    if byte == UInt8(ascii: "\\") {
                        position += 2
                    } else if hasPrefix("\"\"\"", at: position, before: end) {
                        position += 3
                        // Up to two more quotes may belong to the content, right before the delimiter.
                        var extra = 0
                        while extra < 2, position < end, bytes[position] == UInt8(ascii: "\"") {
                            position += 1
                            extra += 1
                        }
                        state = .normal
                    } else {
                        position += 1
                    }
                case .multilineLiteral:
                    if hasPrefix("'''", at: position, before: end) {
                        position += 3
                        var extra = 0
                        while extra < 2, position < end, bytes[position] == UInt8(ascii: "'") {
                            position += 1
                            extra += 1
                        }
                        state = .normal
                    } else {
                        position += 1
                    }
                }
            }
        }
    }
}

/// TOML string literals.
public enum TOMLString {
    /// `text` as a TOML basic string, quoted and escaped.
    public static func quote(_ text: String) -> String {
        var output = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\t": output += "\\t"
            case "\r": output += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output + "\""
    }

    /// A key: bare when it can be, quoted otherwise.
    public static func key(_ text: String) -> String {
        let bare =
            !text.isEmpty
            && text.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
        return bare ? text : quote(text)
    }
}
