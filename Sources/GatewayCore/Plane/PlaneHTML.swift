import AgentWire

/// Plane keeps descriptions and comments as HTML written by people in a rich-text editor; agents
/// read and write plain text. This is the one conversion both ways.
///
/// HTML to text keeps what a reader sees: paragraphs, line breaks and list items become lines,
/// every tag and attribute is dropped (links keep their text, never their address), the text of
/// `script`, `style` and similar elements is dropped whole, and entities are decoded. What comes
/// out is still untrusted: the tools mark it as such and sanitize it like any tracker text.
/// Text to HTML escapes everything, so an agent cannot write markup into Plane.
enum PlaneHTML {
    /// The most HTML read from one field; the rest is cut (a description is capped far lower).
    static let maximumHTMLBytes = 4 * 1024 * 1024

    /// Elements whose content is never shown as text.
    static let droppedElements: Set<String> = ["script", "style", "template", "noscript", "iframe", "object", "svg", "math", "head", "title"]
    /// Elements that end a line.
    static let lineElements: Set<String> = [
        "p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "tr", "hr", "ul", "ol", "table", "section",
    ]

    // MARK: HTML to text

    /// The text a person sees in `html`.
    static func text(_ html: String) -> String {
        let scalars = Array(html.utf8.prefix(maximumHTMLBytes))
        var output: [UInt8] = []
        output.reserveCapacity(min(scalars.count, 1 << 16))
        var index = 0
        var dropping: String?
        while index < scalars.count {
            let byte = scalars[index]
            if byte == UInt8(ascii: "<") {
                guard let end = scalars[index...].firstIndex(of: UInt8(ascii: ">")) else { break }
                let tag = Tag(Array(scalars[(index + 1)..<end]))
                index = end + 1
                if let name = dropping {
                    if tag.closing, tag.name == name { dropping = nil }
                    continue
                }
                if !tag.closing, droppedElements.contains(tag.name), !tag.selfClosing {
                    dropping = tag.name
                    continue
                }
                if tag.name == "li", !tag.closing {
                    newline(&output)
                    output += Array("- ".utf8)
                } else if lineElements.contains(tag.name), tag.closing || tag.name == "br" || tag.name == "hr" {
                    output.append(UInt8(ascii: "\n"))
                }
                continue
            }
            if dropping != nil {
                index += 1
                continue
            }
            if byte == UInt8(ascii: "&"), let (decoded, length) = entity(scalars, at: index) {
                output += Array(decoded.utf8)
                index += length
                continue
            }
            output.append(byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\t") ? UInt8(ascii: " ") : byte)
            index += 1
        }
        return tidy(String(decoding: output, as: UTF8.self))
    }

    /// A tag's name, lowercased, and whether it closes or closes itself.
    struct Tag {
        var name: String
        var closing: Bool
        var selfClosing: Bool

        init(_ inner: [UInt8]) {
            var bytes = inner[...]
            closing = bytes.first == UInt8(ascii: "/")
            if closing { bytes = bytes.dropFirst() }
            selfClosing = bytes.last == UInt8(ascii: "/")
            let nameBytes = bytes.prefix { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) }
            name = String(decoding: nameBytes, as: UTF8.self).lowercased()
        }
    }

    static func newline(_ output: inout [UInt8]) {
        if let last = output.last, last != UInt8(ascii: "\n") { output.append(UInt8(ascii: "\n")) }
    }

    static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "ndash": "–", "mdash": "—", "hellip": "…",
        "lsquo": "‘", "rsquo": "’", "ldquo": "“", "rdquo": "”", "copy": "©", "reg": "®", "trade": "™", "middot": "·", "bull": "•",
    ]

    /// The text of the entity at `start` and its length in bytes, or `nil` for a lone `&`.
    static func entity(_ bytes: [UInt8], at start: Int) -> (String, Int)? {
        let limit = min(bytes.count, start + 12)
        guard let semicolon = bytes[(start + 1)..<limit].firstIndex(of: UInt8(ascii: ";")) else { return nil }
        let body = String(decoding: bytes[(start + 1)..<semicolon], as: UTF8.self)
        let length = semicolon - start + 1
        if body.hasPrefix("#") {
            let digits = body.dropFirst()
            let value = digits.first == "x" || digits.first == "X" ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
            guard let value, let scalar = Unicode.Scalar(value), value != 0 else { return ("\u{FFFD}", length) }
            return (String(Character(scalar)), length)
        }
        guard let named = namedEntities[body] else { return nil }
        return (named, length)
    }

    /// Trims each line's spaces, keeps at most one blank line in a row, trims the whole.
    static func tidy(_ text: String) -> String {
        var lines: [String] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            if line.isEmpty, lines.last?.isEmpty ?? true { continue }
            lines.append(line)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    // MARK: Text to HTML

    /// `text` as paragraphs, every character escaped: blank lines separate paragraphs, single line
    /// breaks become `<br>`.
    static func html(_ text: String) -> String {
        let lines = text.replacing("\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
        var paragraphs: [[Substring]] = [[]]
        for line in lines {
            if line.allSatisfy(\.isWhitespace) {
                if !(paragraphs.last?.isEmpty ?? true) { paragraphs.append([]) }
            } else {
                paragraphs[paragraphs.count - 1].append(line)
            }
        }
        return paragraphs.filter { !$0.isEmpty }.map { "<p>" + $0.map { escape(String($0)) }.joined(separator: "<br>") + "</p>" }.joined()
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    // MARK: Structured blocks in a description

    /// A work item's description as the tools see it: the text before the first block heading,
    /// then each block (an `<h3>` whose text is a block name, and what follows it up to the next
    /// block heading). People edit these sections in Plane like any other part of the description.
    struct Description: Equatable {
        var text: String
        var blocks: [IssueBlock]
        /// The HTML before the first block heading, kept as people wrote it when only blocks change.
        var leadingHTML: String
        /// The HTML from the first block heading on, kept as people wrote it when only the text changes.
        var blocksHTML: String
    }

    static func description(_ html: String) -> Description {
        let bytes = Array(html.utf8.prefix(maximumHTMLBytes))
        let headings = blockHeadings(bytes)
        guard let first = headings.first else { return Description(text: text(html), blocks: [], leadingHTML: html, blocksHTML: "") }
        let leading = String(decoding: bytes[..<first.range.lowerBound], as: UTF8.self)
        var blocks: [IssueBlock] = []
        for (index, heading) in headings.enumerated() {
            let end = index + 1 < headings.count ? headings[index + 1].range.lowerBound : bytes.count
            let body = text(String(decoding: bytes[heading.range.upperBound..<end], as: UTF8.self))
            if !body.isEmpty, !blocks.contains(where: { $0.name == heading.name }) { blocks.append(IssueBlock(name: heading.name, text: body)) }
        }
        return Description(
            text: text(leading), blocks: blocks, leadingHTML: leading, blocksHTML: String(decoding: bytes[first.range.lowerBound...], as: UTF8.self))
    }

    /// The HTML of a description: `leadingHTML` (or the escaped `text`), then one section per block
    /// in the vocabulary's order.
    static func descriptionHTML(leadingHTML: String, blocks: [IssueBlock]) -> String {
        // Plane refuses an empty description_html ("Invalid HTML passed"); an empty paragraph is its own empty.
        var html = leadingHTML.isEmpty ? "<p></p>" : leadingHTML
        for name in IssueVocabulary.blockNames {
            guard let block = blocks.first(where: { $0.name == name }), !block.text.isEmpty else { continue }
            html += "<h3>\(escape(name))</h3>" + self.html(block.text)
        }
        return html
    }

    /// The `<h3>` elements whose text is a block name, in order, as byte ranges of `bytes`.
    static func blockHeadings(_ bytes: [UInt8]) -> [(name: String, range: Range<Int>)] {
        var found: [(String, Range<Int>)] = []
        var start = 0
        while let open = find(Array("<h3".utf8), in: bytes, from: start) {
            guard let close = find(Array("</h3>".utf8), in: bytes, from: open + 3) else { break }
            let end = close + 5
            let heading = text(String(decoding: bytes[open..<end], as: UTF8.self)).lowercased()
            if let name = IssueVocabulary.blockNames.first(where: { $0.lowercased() == heading }) { found.append((name, open..<end)) }
            start = end
        }
        return found
    }

    /// The first position of `needle` in `bytes` at or after `start`, ASCII letters compared without case.
    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        var index = start
        while index + needle.count <= bytes.count {
            var matches = true
            for offset in 0..<needle.count where lowered(bytes[index + offset]) != needle[offset] {
                matches = false
                break
            }
            if matches { return index }
            index += 1
        }
        return nil
    }

    static func lowered(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
}
