import AgentWire

/// Work sessions: start, bounded notes, finish.
extension TrackerTools {
    /// The answer of a work-session write: identity, status and times, plus the fields in `fields`.
    func workSessionChange(
        _ stored: WorkSessionRecord, project: ProjectRecord, fields: [(String, JSONValue)], untrusted: [String], text: String
    ) -> ToolOutput {
        var object: JSONObject = ["id": .string(stored.id), "project": .string(project.key), "status": .string(stored.status)]
        for (name, value) in fields { object[name] = value }
        object["updatedAt"] = .string(Timestamp.rfc3339(milliseconds: stored.updatedAt))
        return ToolOutput(
            structured: ["workSession": .object(object)], text: text, untrustedPointers: untrusted, targetIDs: [stored.id], project: project.key)
    }

    func storedWorkSession(_ id: String, in store: any StoreReader) throws -> WorkSessionRecord {
        guard let stored = try store.workSession(id: id) else { throw GatewayError.internalError }
        return stored
    }

    func issueInProject(_ key: String?, project: ProjectRecord, store: any StoreReader) throws -> IssueRecord? {
        guard let key else { return nil }
        let (issueProject, issue) = try grantedIssue(key, in: store)
        guard issueProject.id == project.id else {
            throw GatewayError.validationFailed("issue \(key) belongs to project \(issueProject.key), not \(project.key)")
        }
        return issue
    }

    func startWorkSession(_ store: any StoreWriter) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let issue = try issueInProject(string("issue"), project: project, store: store)
        let session = WorkSessionRecord(
            id: "wks_\(ULID())", agentID: principal.agent.id, projectID: project.id, issueID: issue?.id, summary: string("summary") ?? "",
            status: "active", result: nil, startedAt: now, updatedAt: now, finishedAt: nil)
        try store.insertWorkSession(session)
        let stored = try storedWorkSession(session.id, in: store)
        let issueKey = issue.map { "\(project.key)-\($0.number)" }
        var text = "Started work session \(stored.id) in \(project.key) (\(stored.status))."
        if let issueKey { text += " Issue: \(issueKey)." }
        text += "\nSummary: \(UntrustedText.marked(stored.summary))"
        return workSessionChange(
            stored, project: project,
            fields: [
                ("issue", issueKey.map { .string($0) } ?? .null), ("summary", .string(UntrustedText.sanitize(stored.summary))), ("noteCount", 0),
                ("result", .null), ("startedAt", .string(Timestamp.rfc3339(milliseconds: stored.startedAt))), ("finishedAt", .null),
            ], untrusted: ["/workSession/summary"], text: text)
    }

    func activeWorkSession(_ store: any StoreReader) throws -> (WorkSessionRecord, ProjectRecord) {
        let id = string("workSession") ?? ""
        guard let session = try store.workSession(id: id), session.agentID == principal.agent.id,
            let project = try store.project(id: session.projectID)
        else { throw GatewayError.notFound("work session \(id) does not exist for this agent; start one with start_work_session") }
        try authorize(project.key)
        guard session.status == "active" else {
            throw GatewayError.validationFailed("work session \(id) is already \(session.status); start a new one with start_work_session")
        }
        return (session, project)
    }

    func updateWorkSession(_ store: any StoreWriter) throws -> ToolOutput {
        var (session, project) = try activeWorkSession(store)
        let position = try store.workSessionNoteCount(workSessionID: session.id)
        guard position < Self.maximumNotesPerWorkSession else {
            throw GatewayError.validationFailed(
                "work session \(session.id) already has \(Self.maximumNotesPerWorkSession) notes; finish it and start a new one")
        }
        let issue = try issueInProject(string("issue"), project: project, store: store)
        if let issue { session.issueID = issue.id }
        session.updatedAt = now
        try store.updateWorkSession(session)
        let note = WorkSessionNote(workSessionID: session.id, position: position, at: now, text: string("note") ?? "", issueID: session.issueID)
        try store.insertWorkSessionNote(note)
        let stored = try storedWorkSession(session.id, in: store)
        guard let storedNote = try store.workSessionNotes(workSessionID: session.id).last, storedNote.position == position else {
            throw GatewayError.internalError
        }
        let noteIssue: JSONValue
        if let issueID = storedNote.issueID, let noted = try knownIssues[issueID]?.1 ?? store.issue(id: issueID) {
            noteIssue = .string("\(project.key)-\(noted.number)")
        } else {
            noteIssue = .null
        }
        var fields: [(String, JSONValue)] = [
            (
                "note",
                [
                    "at": .string(Timestamp.rfc3339(milliseconds: storedNote.at)), "text": .string(UntrustedText.sanitize(storedNote.text)),
                    "issue": noteIssue,
                ]
            ),
            ("noteCount", .int(position + 1)),
        ]
        if let issue { fields.insert(("issue", .string("\(project.key)-\(issue.number)")), at: 0) }
        var text = "Added note \(position + 1) to work session \(stored.id) in \(project.key)"
        if let issue = noteIssue.stringValue { text += " (issue \(issue))" }
        text += ": \(UntrustedText.marked(storedNote.text))"
        return workSessionChange(stored, project: project, fields: fields, untrusted: ["/workSession/note/text"], text: text)
    }

    func finishWorkSession(_ store: any StoreWriter) throws -> ToolOutput {
        var (session, project) = try activeWorkSession(store)
        session.status = string("status") ?? "completed"
        session.result = string("result")
        session.finishedAt = now
        session.updatedAt = now
        try store.updateWorkSession(session)
        let stored = try storedWorkSession(session.id, in: store)
        let result = stored.result ?? ""
        return workSessionChange(
            stored, project: project,
            fields: [
                ("result", .string(UntrustedText.sanitize(result))),
                ("finishedAt", stored.finishedAt.map { .string(Timestamp.rfc3339(milliseconds: $0)) } ?? .null),
            ], untrusted: ["/workSession/result"],
            text: "Finished work session \(stored.id) in \(project.key) (\(stored.status)).\nResult: \(UntrustedText.marked(result))")
    }
}
