import Testing

@testable import AgentWire

@Suite struct JSONParserTests {
    @Test func roundTripKeepsOrderNumbersAndUnknownFields() throws {
        let text = #"{"b":1,"a":[true,false,null,1.50,-0,1e400],"x-future":{"nested":"é\n\"q\""}}"#
        let value = try JSONValue(parsing: text)
        #expect(value.jsonText == text)
        #expect(value["b"]?.intValue == 1)
        #expect(value.objectValue?.keys == ["b", "a", "x-future"])
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "tru", "{} x", "\"\u{01}\"", "[1 2]", "-", "1e",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
        #expect(throws: JSONParseError.self) {
            try [UInt8]([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x22, 0x7D]).withUnsafeBufferPointer { try JSONObjectLayout.scan($0) }
        }
    }

    @Test func boundsNestingDepth() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect((try? JSONValue(parsing: fine)) != nil)
    }

    @Test func decodesEscapesAndSurrogates() throws {
        let value = try JSONValue(parsing: #""\u00e9\ud83d\ude00\t\/""#)
        #expect(value.stringValue == "é😀\t/")
    }

    @Test func serializedOutputHasNoRawNewlines() throws {
        let value: JSONValue = ["text": "line1\nline2\r\u{2028}", "n": 3]
        let bytes = value.serialized()
        #expect(!bytes.contains(0x0A) && !bytes.contains(0x0D))
        #expect(try JSONValue(parsing: bytes) == value)
    }

    @Test func layoutFindsTopLevelMembers() throws {
        let text = Array(#" {"jsonrpc":"2.0", "id" : 7 ,"result":{"content":[{"type":"text","text":"}"}]}} "#.utf8)
        let layout = try text.withUnsafeBufferPointer { try JSONObjectLayout.scan($0) }
        #expect(layout.members.map(\.key) == ["jsonrpc", "id", "result"])
        let id = try #require(layout.member("id"))
        #expect(String(decoding: text[id.valueRange], as: UTF8.self) == "7")
        #expect(text[layout.objectRange.lowerBound] == UInt8(ascii: "{"))
    }

    @Test func canonicalFormSortsKeysRecursively() throws {
        let value = try JSONValue(parsing: #"{"b":{"d":1,"c":2},"a":0}"#)
        #expect(value.canonicalized().jsonText == #"{"a":0,"b":{"c":2,"d":1}}"#)
    }
}

@Suite struct IdentifierTests {
    @Test func ulidIsTwentySixCrockfordCharactersAndSortsByTime() {
        let early = ULID(milliseconds: 1_000)
        let late = ULID(milliseconds: 2_000)
        #expect(early.text.count == 26)
        #expect(early.text.allSatisfy { CrockfordBase32.alphabet.contains($0.asciiValue ?? 0) })
        #expect(early.text < late.text)
        #expect(ULID().text != ULID().text)
    }

    @Test func pairingCodeNormalisesWhatPeopleType() {
        #expect(PairingCodeFormat.normalize("abcd-efgh") == "ABCD-EFGH")
        #expect(PairingCodeFormat.normalize("o1l2 3456") == "0112-3456")
        #expect(PairingCodeFormat.normalize("ABCD-EFG") == nil)
        #expect(PairingCodeFormat.normalize("ABCD-EFGU") == nil)
    }
}
