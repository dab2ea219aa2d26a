import AgentWire
import Testing

@testable import GatewayCore

/// Plane's HTML and times as the adapter reads and writes them, without a server.
@Suite("Plane adapter: HTML, blocks, times, cursors")
struct PlaneConversionTests {
    @Test func htmlBecomesTheTextAPersonSees() {
        let html = """
            <p>First <strong>bold</strong> line<br>second line</p><ul><li>one</li><li>two &amp; three</li></ul>\
            <p><a href="https://evil.example/x">the link text</a> &lt;tag&gt; &#x41;&#66;</p>
            """
        #expect(PlaneHTML.text(html) == "First bold line\nsecond line\n- one\n- two & three\n\nthe link text <tag> AB")
    }

    @Test func scriptsStylesAndAttributesLeaveNoText() {
        let html = #"<script>alert("x")</script><style>p{}</style><img src=x onerror="steal()"><p title="hidden">ok</p><iframe>frame</iframe>"#
        #expect(PlaneHTML.text(html) == "ok")
        // An unclosed tag ends the text instead of leaking the rest as markup.
        #expect(PlaneHTML.text("<p>visible</p><div class=\"x") == "visible")
        // A NUL entity and an out-of-range one become the replacement character, never a cut.
        #expect(PlaneHTML.text("a&#0;b&#x110000;c") == "a\u{FFFD}b\u{FFFD}c")
    }

    @Test func textBecomesEscapedParagraphs() {
        #expect(PlaneHTML.html("a <script>\n& b\n\nnext \"para\"") == "<p>a &lt;script&gt;<br>&amp; b</p><p>next &quot;para&quot;</p>")
        #expect(PlaneHTML.html("") == "")
        #expect(PlaneHTML.text(PlaneHTML.html("round <trip> & back\nline two")) == "round <trip> & back\nline two")
    }

    @Test func blocksAreSectionsOfTheDescription() {
        let blocks = [IssueBlock(name: "Plan", text: "step 1\nstep 2"), IssueBlock(name: "Context", text: "why <this>")]
        let html = PlaneHTML.descriptionHTML(leadingHTML: PlaneHTML.html("The description."), blocks: blocks)
        // Vocabulary order, whatever the order given.
        #expect(html == "<p>The description.</p><h3>Context</h3><p>why &lt;this&gt;</p><h3>Plan</h3><p>step 1<br>step 2</p>")
        let parsed = PlaneHTML.description(html)
        #expect(parsed.text == "The description.")
        #expect(parsed.blocks == [IssueBlock(name: "Context", text: "why <this>"), IssueBlock(name: "Plan", text: "step 1\nstep 2")])
        #expect(parsed.leadingHTML == "<p>The description.</p>")
        #expect(parsed.blocksHTML.hasPrefix("<h3>Context</h3>"))
        // A person's own heading with another name stays part of the description; Plane's editor
        // may add attributes and change case.
        let edited = PlaneHTML.description(#"<h3>Background</h3><p>x</p><h3 class="editor-heading">acceptance CRITERIA</h3><p>it works</p>"#)
        #expect(edited.text == "Background\nx")
        #expect(edited.blocks == [IssueBlock(name: "Acceptance criteria", text: "it works")])
    }

    @Test func planeTimesBecomeMilliseconds() {
        #expect(PlaneRecords.time(.string("1970-01-01T00:00:00Z")) == 0)
        #expect(PlaneRecords.time(.string("2026-11-29T04:40:00.123456Z")) == 1_795_927_200_123)
        #expect(PlaneRecords.time(.string("2026-11-29T10:10:00.5+05:30")) == 1_795_927_200_500)
        #expect(PlaneRecords.time(.string("not a time")) == 0)
        #expect(PlaneRecords.time(nil) == 0)
    }

    @Test func cursorsRoundTripAndRefuseForgeries() throws {
        let cursor = PlaneCursor(kind: .search, plane: "100:2:0", skip: 7)
        let decoded = try PlaneCursor(decoding: cursor.encoded, kind: .search)
        #expect(decoded.plane == "100:2:0" && decoded.skip == 7)
        // A comments cursor is not a search cursor, and Plane never sees text it did not issue.
        #expect(throws: GatewayError.self) { try PlaneCursor(decoding: cursor.encoded, kind: .comments) }
        let forged = PlaneCursor(kind: .search, plane: "1&workspace=other", skip: 0).encoded
        #expect(throws: GatewayError.self) { try PlaneCursor(decoding: forged, kind: .search) }
        #expect(throws: GatewayError.self) { try PlaneCursor(decoding: "%%%", kind: .search) }
    }

    @Test func agentCommentsDropTheirTrailerAndNameTheAgent() {
        let trailer = PlaneComments.trailer(agentName: "laptop", agentID: "agt_1", ownerName: "Alice")
        let json: JSONValue = [
            "id": "c1", "comment_html": .string(PlaneComments.html(body: "Done <b>.", trailer: trailer)), "actor": "bot-uuid",
            "external_source": "agent-gateway", "external_id": "agt_1:abcdef", "created_at": "2026-11-29T04:40:00Z",
        ]
        let comment = PlaneComments.record(json, issueID: "i1")
        #expect(comment?.body == "Done <b>.")
        #expect(comment?.authorAgentID == "agt_1")
        // A person's comment that imitates the trailer keeps it, and names no agent.
        var person = json
        person = ["id": "c2", "comment_html": json["comment_html"]!, "actor": "alice-uuid"]
        #expect(PlaneComments.record(person, issueID: "i1")?.authorAgentID == nil)
        #expect(PlaneComments.record(person, issueID: "i1")?.body.hasSuffix("via agent-gateway") == true)
    }

    @Test func externalIDsAreAgentScopedAndStable() {
        let one = Gateway.externalID(agentID: "agt_1", keyHash: String(repeating: "ab", count: 32))
        #expect(one == "agt_1:" + String(repeating: "ab", count: 16))
        #expect(Gateway.externalID(agentID: "agt_1", keyHash: nil) != Gateway.externalID(agentID: "agt_1", keyHash: nil))
    }
}
