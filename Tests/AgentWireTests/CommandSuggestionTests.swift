import AgentWire
import Testing

@Suite("Suggestions for mistyped subcommands")
struct CommandSuggestionTests {
    let names = ["setup", "serve", "status", "logout", "help"]

    @Test(
        "typos within two edits, swaps included, find the command",
        arguments: [
            ("statsu", "status"), ("stauts", "status"), ("setpu", "setup"), ("serv", "serve"), ("logot", "logout"), ("STATUS", "status"),
        ])
    func suggests(typed: String, expected: String?) {
        #expect(CommandSuggestion.closest(to: typed, among: names) == expected)
    }

    @Test("unrelated words and very short ones get no suggestion", arguments: ["frobnicate", "x", "zz", "delete"])
    func noSuggestion(typed: String) {
        #expect(CommandSuggestion.closest(to: typed, among: names) == nil)
    }

    @Test("the message names the typo without control characters, suggests, and lists the commands")
    func message() {
        let text = CommandSuggestion.unknownCommandMessage("stat\u{1B}su", among: names, program: "agent-sidecar")
        #expect(!text.contains("\u{1B}"))
        #expect(CommandSuggestion.unknownCommandMessage("statsu", among: names, program: "agent-sidecar").contains("did you mean 'status'?"))
    }
}
