/// A one-time pairing code: 8 characters of Crockford base32, shown as `XXXX-XXXX`.
public enum PairingCodeFormat {
    public static let length = 8

    /// The canonical `XXXX-XXXX` form of what a person typed (case, dashes, spaces and the usual
    /// confusions are forgiven), or `nil` when it cannot be a pairing code.
    public static func normalize(_ typed: String) -> String? {
        var values: [UInt8] = []
        for character in typed where character != "-" && character != " " {
            guard let value = CrockfordBase32.value(of: character) else { return nil }
            values.append(CrockfordBase32.alphabet[Int(value)])
        }
        guard values.count == length else { return nil }
        return String(decoding: values[0..<4], as: UTF8.self) + "-" + String(decoding: values[4..<8], as: UTF8.self)
    }
}
