/// The byte ranges of a JSON object's top-level members, found without building a tree. The
/// sidecar uses it to relay large responses while touching only the members it must change.
public struct JSONObjectLayout: Sendable {
    public struct Member: Sendable {
        public let key: String
        /// The whole member, from the key's opening quote to the end of its value.
        public let memberRange: Range<Int>
        public let valueRange: Range<Int>
    }
    public let members: [Member]
    /// The range of the object itself, from `{` to `}` inclusive.
    public let objectRange: Range<Int>

    public func member(_ key: String) -> Member? { members.first { $0.key == key } }

    /// Scans `bytes`, which must hold exactly one JSON object (whitespace around it is allowed),
    /// validating every nested value.
    public static func scan(
        _ bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int = JSONParser.defaultMaximumDepth
    ) throws(JSONParseError) -> JSONObjectLayout {
        var parser = JSONParser(buffer: bytes, maximumDepth: maximumDepth)
        parser.skipWhitespace()
        guard parser.index < bytes.count else { throw parser.fail(.unexpectedEnd) }
        guard bytes[parser.index] == UInt8(ascii: "{") else { throw parser.fail(.unexpectedCharacter) }
        let objectStart = parser.index
        parser.index += 1
        var members: [Member] = []
        parser.skipWhitespace()
        if parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "}") {
            parser.index += 1
        } else {
            while true {
                parser.skipWhitespace()
                guard parser.index < bytes.count else { throw parser.fail(.unexpectedEnd) }
                guard bytes[parser.index] == UInt8(ascii: "\"") else { throw parser.fail(.unexpectedCharacter) }
                let memberStart = parser.index
                let key = try parser.parseString()
                parser.skipWhitespace()
                guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: ":") else { throw parser.fail(.unexpectedCharacter) }
                parser.index += 1
                parser.skipWhitespace()
                let valueStart = parser.index
                try parser.skipValue(depth: 1)
                members.append(Member(key: key, memberRange: memberStart..<parser.index, valueRange: valueStart..<parser.index))
                parser.skipWhitespace()
                guard parser.index < bytes.count else { throw parser.fail(.unexpectedEnd) }
                if bytes[parser.index] == UInt8(ascii: ",") {
                    parser.index += 1
                } else if bytes[parser.index] == UInt8(ascii: "}") {
                    parser.index += 1
                    break
                } else {
                    throw parser.fail(.unexpectedCharacter)
                }
            }
        }
        let objectEnd = parser.index
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.fail(.trailingData) }
        return JSONObjectLayout(members: members, objectRange: objectStart..<objectEnd)
    }
}
