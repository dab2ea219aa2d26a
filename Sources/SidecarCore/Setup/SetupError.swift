/// A failure while rendering or merging the setup packet. Equality compares the ``code`` only.
public struct SetupError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String, Sendable {
            case conflictingDefinition = "conflicting_definition"
            case unparseableConfig = "unparseable_config"
            case malformedMarkers = "malformed_markers"
            case template = "template"
            case invalidInput = "invalid_input"
            case unsafePath = "unsafe_path"
        }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The file already defines our entry in a form we cannot replace line by line (an inline
        /// table, dotted keys).
        public static let conflictingDefinition = Code(.conflictingDefinition)
        /// The file is not valid JSON / UTF-8 / the expected shape, so merging could lose data.
        public static let unparseableConfig = Code(.unparseableConfig)
        /// AGENTS.md has a begin marker without its end marker (or the reverse).
        public static let malformedMarkers = Code(.malformedMarkers)
        /// A template asked for a value nobody supplied (a bug).
        public static let template = Code(.template)
        /// A flag or argument is unusable (not a pairing code, not a URL, missing the gateway).
        public static let invalidInput = Code(.invalidInput)
        /// A path setup would write through is a link, or not a regular file (see `SetupPathGuard`).
        public static let unsafePath = Code(.unsafePath)

        public var description: String { kind.rawValue }
    }

    public let code: Code
    /// One line: what happened and what to do next.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func == (lhs: SetupError, rhs: SetupError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
