/// "Did you mean …?" for a mistyped subcommand, shared by both executables.
public enum CommandSuggestion {
    /// The known name closest to `typed` (optimal string alignment distance: insertions, deletions,
    /// substitutions and swaps of neighbours each cost 1), when it is close enough to be a typo:
    /// at most 2 edits, and fewer edits than half the typed length.
    ///
    /// - Parameters:
    ///   - typed: What the user typed.
    ///   - names: The names that exist.
    public static func closest(to typed: String, among names: [String]) -> String? {
        let typed = Array(typed.lowercased().unicodeScalars.prefix(64))
        var best: (name: String, distance: Int)?
        for name in names {
            let distance = editDistance(typed, Array(name.lowercased().unicodeScalars))
            if distance < (best?.distance ?? Int.max) { best = (name, distance) }
        }
        guard let best, best.distance <= 2, best.distance * 2 < max(typed.count, 2) else { return nil }
        return best.name
    }

    /// The message for an unknown subcommand, with a suggestion when there is one.
    ///
    /// - Parameters:
    ///   - typed: What the user typed.
    ///   - names: The subcommands that exist.
    ///   - program: The executable's name, for the help hint.
    public static func unknownCommandMessage(_ typed: String, among names: [String], program: String) -> String {
        let shown = String(typed.unicodeScalars.prefix(64).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
        let hint = closest(to: typed, among: names).map { "did you mean '\($0)'? " } ?? ""
        return "unknown command '\(shown)'; \(hint)the commands are \(names.joined(separator: ", ")) (see `\(program) --help`)"
    }

    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
