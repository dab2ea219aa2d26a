/// A JSON document as a tree that keeps everything it was given: member order, unknown fields and
/// the exact text of every number. The sidecar relays fields it has never heard of, so nothing here
/// may normalise or drop data.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func int(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
    public static func double(_ value: Double) -> JSONValue { .number(JSONNumber(value)) }

    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let array) = self { return array }
        return nil
    }
    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let bool) = self { return bool }
        return nil
    }
    public var intValue: Int? {
        if case .number(let number) = self { return number.intValue }
        return nil
    }
    public var doubleValue: Double? {
        if case .number(let number) = self { return number.doubleValue }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Member lookup on an object; `nil` for any other kind of value.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// Element lookup on an array; `nil` out of range or for any other kind of value.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// The same value with every object's members sorted by key, recursively: the canonical form
    /// used for fingerprints and hashes.
    public func canonicalized() -> JSONValue {
        switch self {
        case .array(let items): return .array(items.map { $0.canonicalized() })
        case .object(let object):
            let sorted = object.members.map { JSONObject.Member(key: $0.key, value: $0.value.canonicalized()) }
                .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            return .object(JSONObject(members: sorted))
        default: return self
        }
    }
}

/// A JSON number kept as its literal text, so that relaying never changes its precision or form.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    public let literal: String

    /// Wraps a literal that the parser has already checked against the JSON number grammar.
    init(validatedLiteral: String) { self.literal = validatedLiteral }
    public init(_ value: Int) { self.literal = String(value) }
    public init(_ value: Double) {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            self.literal = String(Int64(value))
        } else if value.isFinite {
            self.literal = "\(value)"
        } else {
            self.literal = "0"
        }
    }

    public var intValue: Int? {
        if let exact = Int(literal) { return exact }
        if let double = Double(literal), double == double.rounded(), abs(double) < 9.0e18 { return Int(double) }
        return nil
    }
    public var doubleValue: Double? { Double(literal) }
    public var description: String { literal }
}

/// A JSON object whose members keep their order.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    public var members: [Member]

    public init(members: [Member] = []) { self.members = members }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.members = elements.map { Member(key: $0.0, value: $0.1) }
    }

    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }

    /// Reads the first member with this key; setting replaces it in place, appends it, or removes it (`nil`).
    public subscript(key: String) -> JSONValue? {
        get {
            for member in members where member.key == key { return member.value }
            return nil
        }
        set {
            if let index = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[index].value = newValue } else { members.remove(at: index) }
            } else if let newValue {
                members.append(Member(key: key, value: newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[Member]> { members.makeIterator() }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(members: elements.map { JSONObject.Member(key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}
