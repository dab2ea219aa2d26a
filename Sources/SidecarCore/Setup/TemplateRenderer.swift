/// Fills `{{placeholder}}` slots in a template. Placeholder names are `[a-z0-9_]+`; every slot
/// must have a value and every value is inserted verbatim (callers escape for the target format).
public enum TemplateRenderer {
    /// The template with every placeholder replaced.
    ///
    /// - Throws: ``SetupError/Code/template`` when a placeholder has no value.
    public static func render(_ template: String, values: [String: String]) throws(SetupError) -> String {
        var output = ""
        var rest = template[...]
        while let open = rest.firstRange(of: "{{") {
            output += rest[..<open.lowerBound]
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.firstRange(of: "}}") else {
                output += rest[open.lowerBound...]
                rest = ""
                break
            }
            let name = String(afterOpen[..<close.lowerBound])
            guard isPlaceholderName(name) else {
                output += "{{"
                rest = afterOpen
                continue
            }
            guard let value = values[name] else {
                throw SetupError(.template, "the template has no value for {{\(name)}}; this is a bug in agent-sidecar, please report it")
            }
            output += value
            rest = afterOpen[close.upperBound...]
        }
        output += rest
        return output
    }

    /// The placeholder names a template uses, in order of first use.
    public static func placeholders(in template: String) -> [String] {
        var names: [String] = []
        var rest = template[...]
        while let open = rest.firstRange(of: "{{") {
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.firstRange(of: "}}") else { break }
            let name = String(afterOpen[..<close.lowerBound])
            if isPlaceholderName(name) {
                if !names.contains(name) { names.append(name) }
                rest = afterOpen[close.upperBound...]
            } else {
                rest = afterOpen
            }
        }
        return names
    }

    private static func isPlaceholderName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "_")
            }
    }
}
