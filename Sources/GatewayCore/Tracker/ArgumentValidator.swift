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
                guard seen.insert(member.key).inserted else { throw .validationFailed("\(path).\(member.key) appears twice") }
                guard let propertySchema = properties[member.key] else {
                    if schemaObject["additionalProperties"]?.boolValue == false {
                        let allowed = properties.keys.joined(separator: ", ")
                        throw .validationFailed("\(path).\(member.key) is not a known argument; valid arguments: \(allowed)")
                    }
                    continue
                }
                try validate(member.value, against: propertySchema, path: "\(path).\(member.key)")
            }
        case "string":
            guard let string = value.stringValue else { throw .validationFailed("\(path) must be a string") }
            let length = string.count
            if let minimum = schemaObject["minLength"]?.intValue, length < minimum {
                throw .validationFailed("\(path) must have at least \(minimum) character(s)")
            }
            if let maximum = schemaObject["maxLength"]?.intValue, length > maximum {
                throw .validationFailed("\(path) must have at most \(maximum) characters")
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
