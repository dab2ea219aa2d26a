import AgentWire

/// Checks tool arguments against the subset of JSON Schema the catalog uses (object with closed
/// properties and required members, string with length and enum, integer with bounds, array with
/// items and maxItems), so the input schema an agent sees is exactly what the gateway enforces.
enum ArgumentValidator {
    static func validate(_ value: JSONValue, against schema: JSONValue, path: String = "arguments") throws(GatewayError) {
        guard let schemaObject = schema.objectValue else { return }
        let type = schemaObject["type"]?.stringValue
        switch type {
        case "object":
            guard let object = value.objectValue else { throw .validationFailed("\(path) must be an object") }
            let properties = schemaObject["properties"]?.objectValue ?? [:]
            for required in schemaObject["required"]?.arrayValue ?? [] {
                if let name = required.stringValue, object[name] == nil || object[name]?.isNull == true {
                    throw .validationFailed("\(path).\(name) is required")
                }
            }
            var seen = Set<String>()
            for member in object {
                guard seen.insert(member.key).inserted else {
                    throw .validationFailed("\(path).\(BoundedText.excerpt(member.key)) appears twice")
                }
                guard let propertySchema = properties[member.key] else {
                    if schemaObject["additionalProperties"]?.boolValue == false {
                        let allowed = properties.keys.joined(separator: ", ")
                        throw .validationFailed(
                            "\(path).\(BoundedText.excerpt(member.key)) is not a known argument; valid arguments: \(allowed)")
                    }
                    continue
                }
                try validate(member.value, against: propertySchema, path: "\(path).\(member.key)")
            }
        case "string":
            guard let string = value.stringValue else { throw .validationFailed("\(path) must be a string") }
            // JSON Schema counts a string's length in Unicode code points, and so does the gateway:
            // a limit of N characters is a limit of at most 4 N bytes of UTF-8, whatever combining
            // marks the text carries (grapheme clusters would let one "character" hold megabytes).
            let length = string.unicodeScalars.count
            if let minimum = schemaObject["minLength"]?.intValue, length < minimum {
                throw .validationFailed("\(path) must have at least \(minimum) character(s)")
            }
            if let maximum = schemaObject["maxLength"]?.intValue, length > maximum {
                throw .validationFailed(
                    "\(path) must have at most \(maximum) characters (Unicode code points; it has \(length)); shorten it")
            }
            if let pattern = schemaObject["pattern"]?.stringValue {
                guard let rule = TextRule(pattern: pattern) else { throw .internalError }
                try rule.check(string, path: path)
            }
            if let values = schemaObject["enum"]?.arrayValue?.compactMap(\.stringValue), !values.contains(string) {
                throw .validationFailed("\(path) must be one of: \(values.joined(separator: ", "))")
            }
        case "integer":
            guard let number = value.intValue, value.doubleValue.map({ $0 == $0.rounded() }) ?? false else {
                throw .validationFailed("\(path) must be an integer")
            }
            if let minimum = schemaObject["minimum"]?.intValue, number < minimum { throw .validationFailed("\(path) must be at least \(minimum)") }
            if let maximum = schemaObject["maximum"]?.intValue, number > maximum { throw .validationFailed("\(path) must be at most \(maximum)") }
        case "array":
            guard let items = value.arrayValue else { throw .validationFailed("\(path) must be an array") }
            if let maximum = schemaObject["maxItems"]?.intValue, items.count > maximum {
                throw .validationFailed("\(path) must have at most \(maximum) items")
            }
            if let itemSchema = schemaObject["items"] {
                for (index, item) in items.enumerated() { try validate(item, against: itemSchema, path: "\(path)[\(index)]") }
            }
        case "boolean":
            guard value.boolValue != nil else { throw .validationFailed("\(path) must be true or false") }
        default:
            return
        }
    }
}

/// What a text argument may contain, published in the input schema as a JSON Schema `pattern`
/// (ECMAScript syntax) and enforced here without a regular-expression engine: no control character
/// (C0, DEL, C1) in one-line fields, and only line feed and tab in multi-line ones. A NUL or any
/// other control character is refused with a validation error, never stored or cut off.
enum TextRule: Sendable {
    case singleLine
    case multiLine

    static let singleLinePattern = #"^[^\u0000-\u001F\u007F-\u009F]*$"#
    static let multiLinePattern = #"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"#

    init?(pattern: String) {
        switch pattern {
        case Self.singleLinePattern: self = .singleLine
        case Self.multiLinePattern: self = .multiLine
        default: return nil
        }
    }

    var pattern: String { self == .singleLine ? Self.singleLinePattern : Self.multiLinePattern }

    func allows(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A: return self == .multiLine
        case 0x00...0x1F, 0x7F...0x9F: return false
        default: return true
        }
    }

    func check(_ text: String, path: String) throws(GatewayError) {
        var position = 0
        for scalar in text.unicodeScalars {
            position += 1
            guard allows(scalar) else {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                let found = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                switch self {
                case .singleLine:
                    throw .validationFailed(
                        "\(path) must be one line of text without control characters (found \(found) at character \(position)); remove it")
                case .multiLine:
                    throw .validationFailed(
                        "\(path) must not contain control characters other than line feed and tab (found \(found) at character \(position)); remove it"
                    )
                }
            }
        }
    }
}
