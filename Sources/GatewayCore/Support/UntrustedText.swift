/// Text that people wrote (titles, descriptions, comments, block text), cleaned and marked before an
/// agent sees it: invisible and bidirectional-control characters are removed, so what the model reads
/// is what a person reviewing it would see, and the text rendering wraps it in a marker the server
/// instructions explain.
public enum UntrustedText {
    public static let openMarker = "<untrusted-content>"
    public static let closeMarker = "</untrusted-content>"
    /// The `_meta` key listing, as JSON pointers into `structuredContent`, every field holding such text.
    public static let metaKey = "io.agent-gateway/untrusted"

    /// Removes format characters (zero-width spaces and joiners, bidi embeddings, overrides and
    /// isolates, word joiners, BOM, tag characters, soft hyphens) and other invisible fillers.
    public static func sanitize(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars where !isInvisible(scalar) {
            scalars.append(scalar)
        }
        return String(scalars)
    }

    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2064, 0x2066...0x206F, 0xFEFF, 0x00AD, 0x180E, 0x061C,
            0x115F, 0x1160, 0x3164, 0xFFA0, 0xE0000...0xE007F, 0xFFF9...0xFFFB:
            return true
        default:
            return scalar.properties.generalCategory == .format
        }
    }

    /// The sanitised text wrapped in the untrusted-content marker, with any marker look-alikes inside
    /// defused so that the text cannot close the marker early.
    public static func marked(_ text: String) -> String {
        let clean = sanitize(text)
            .replacing("<untrusted-content>", with: "‹untrusted-content›")
            .replacing("</untrusted-content>", with: "‹/untrusted-content›")
        return openMarker + clean + closeMarker
    }
}
