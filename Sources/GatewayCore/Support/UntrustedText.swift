/// Text that people wrote (titles, descriptions, comments, block text, notes), cleaned and marked
/// before an agent sees it: invisible characters are removed, so what the model reads is what a
/// person reviewing it would see, and the text rendering wraps it in a marker the server
/// instructions explain.
public enum UntrustedText {
    public static let openMarker = "<untrusted-content>"
    public static let closeMarker = "</untrusted-content>"
    /// The `_meta` key listing, as JSON pointers into `structuredContent`, every field holding such text.
    public static let metaKey = "io.agent-gateway/untrusted"

    /// Unicode's `Default_Ignorable_Code_Point` set, as DerivedCoreProperties.txt (Unicode 15.1 and
    /// 16.0, which agree on it) lists it. The set is stable by Unicode policy: code points are not
    /// removed from it, and its reserved ranges are kept for future invisible characters, so
    /// removing them all is right for text written later too. `UntrustedTextTests` checks the table
    /// against the standard library's `isDefaultIgnorableCodePoint` for every scalar.
    public static let defaultIgnorableRanges: [ClosedRange<UInt32>] = [
        0x00AD...0x00AD,  // SOFT HYPHEN
        0x034F...0x034F,  // COMBINING GRAPHEME JOINER
        0x061C...0x061C,  // ARABIC LETTER MARK
        0x115F...0x1160,  // HANGUL CHOSEONG FILLER..HANGUL JUNGSEONG FILLER
        0x17B4...0x17B5,  // KHMER VOWEL INHERENT AQ..KHMER VOWEL INHERENT AA
        0x180B...0x180F,  // MONGOLIAN FREE VARIATION SELECTORS ONE..THREE, VOWEL SEPARATOR, FVS FOUR
        0x200B...0x200F,  // ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK
        0x202A...0x202E,  // LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE
        0x2060...0x206F,  // WORD JOINER..NOMINAL DIGIT SHAPES (isolates, invisible operators, <reserved-2065>)
        0x3164...0x3164,  // HANGUL FILLER
        0xFE00...0xFE0F,  // VARIATION SELECTOR-1..VARIATION SELECTOR-16
        0xFEFF...0xFEFF,  // ZERO WIDTH NO-BREAK SPACE (BOM)
        0xFFA0...0xFFA0,  // HALFWIDTH HANGUL FILLER
        0xFFF0...0xFFF8,  // <reserved-FFF0>..<reserved-FFF8>
        0x1BCA0...0x1BCA3,  // SHORTHAND FORMAT LETTER OVERLAP..SHORTHAND FORMAT UP STEP
        0x1D173...0x1D17A,  // MUSICAL SYMBOL BEGIN BEAM..MUSICAL SYMBOL END PHRASE
        0xE0000...0xE0FFF,  // tags (LANGUAGE TAG, TAG SPACE..CANCEL TAG), VARIATION SELECTOR-17..256, reserved
    ]

    /// Invisible characters removed besides the default-ignorable ones: the line and paragraph
    /// separators (which some renderers and tokenizers treat as line breaks and others as nothing)
    /// and the braille pattern blank, which renders as an empty cell.
    public static let otherInvisibleScalars: Set<UInt32> = [0x2028, 0x2029, 0x2800]

    /// Removes every default-ignorable code point (zero-width spaces and joiners, bidi marks,
    /// embeddings, overrides and isolates, word joiners, BOM, soft hyphen, variation selectors
    /// VS1–VS256, the combining grapheme joiner, Hangul fillers, tag characters, …), every other
    /// format character (general category Cf), U+2028, U+2029 and U+2800.
    public static func sanitize(_ text: String) -> String {
        // Most tracker text is ASCII, which holds nothing invisible.
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars where !isInvisible(scalar) {
            scalars.append(scalar)
        }
        return String(scalars)
    }

    public static func isDefaultIgnorable(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        // The table is sorted: stop at the first range that ends at or after the value.
        for range in defaultIgnorableRanges where value <= range.upperBound { return value >= range.lowerBound }
        return false
    }

    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return false }
        if isDefaultIgnorable(scalar) || otherInvisibleScalars.contains(scalar.value) { return true }
        return scalar.properties.generalCategory == .format
    }

    /// The sanitised text wrapped in the untrusted-content marker, with anything that could read as
    /// the marker defused (see `defuseMarkers`), so that the text cannot open or close it.
    public static func marked(_ text: String) -> String {
        openMarker + defuseMarkers(sanitize(text)) + closeMarker
    }

    /// Replaces the angle brackets of every marker look-alike with `‹` and `›`: a `<` (or the
    /// full-width `＜`, or the small `﹤`), then optional spaces, slashes or backslashes, then the
    /// word "untrusted" in any case, with full-width letters and with any spaces, dashes,
    /// underscores, dots or colons between the letters. `</UNTRUSTED-CONTENT>`,
    /// `</untrusted-content >`, `< / Untrusted_Content>` and `<untrusted>` are all defused; the
    /// closing `>` is replaced too when it comes within 64 characters.
    public static func defuseMarkers(_ text: String) -> String {
        if !text.unicodeScalars.contains(where: { openers.contains($0.value) }) { return text }
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        output.reserveCapacity(scalars.count)
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            guard openers.contains(scalar.value), let end = markerEnd(scalars, after: index) else {
                output.append(scalar)
                index += 1
                continue
            }
            output.append("‹")
            var position = index + 1
            while position < end {
                output.append(scalars[position])
                position += 1
            }
            if end < scalars.count, closers.contains(scalars[end].value) {
                output.append("›")
                position += 1
            }
            index = position
        }
        return String(output)
    }

    static let openers: Set<UInt32> = [0x3C, 0xFF1C, 0xFE64]
    static let closers: Set<UInt32> = [0x3E, 0xFF1E, 0xFE65]
    static let word = Array("untrusted".unicodeScalars)

    /// When the text after the opener at `start` reads as the marker's word, the index of the
    /// first `>` within 64 scalars (or of the end of the look-alike's word if there is none).
    static func markerEnd(_ scalars: [Unicode.Scalar], after start: Int) -> Int? {
        var position = start + 1
        let limit = min(scalars.count, start + 64)
        while position < limit, [" ", "\t", "\n", "/", "\\", "\u{FF0F}"].contains(scalars[position]) { position += 1 }
        var matched = 0
        while position < limit, matched < word.count {
            let folded = fold(scalars[position])
            if folded == word[matched] {
                matched += 1
            } else if !separators.contains(folded) {
                return nil
            }
            position += 1
        }
        guard matched == word.count else { return nil }
        while position < limit, !closers.contains(scalars[position].value), !openers.contains(scalars[position].value) { position += 1 }
        return position
    }

    static let separators: Set<Unicode.Scalar> = [" ", "\t", "-", "_", ".", ":", "\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}"]

    /// Lower case ASCII for ASCII and full-width Latin letters; the scalar itself otherwise.
    static func fold(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        var value = scalar.value
        if (0xFF01...0xFF5E).contains(value) { value -= 0xFEE0 }
        if (0x41...0x5A).contains(value) { value += 0x20 }
        return Unicode.Scalar(value) ?? scalar
    }
}
