/// Short, one-line excerpts of text a client sent, for error messages: at most `limit` code points,
/// with control and invisible characters shown as `?`, so that an error answer cannot echo a
/// megabyte of the caller's input back, or carry a line break into a log.
enum BoundedText {
    static func excerpt(_ text: String, limit: Int = 40) -> String {
        var output = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                output.append("…")
                break
            }
            let control = scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
            output.append(control || UntrustedText.isInvisible(scalar) ? "?" : scalar)
            count += 1
        }
        return String(output)
    }
}
