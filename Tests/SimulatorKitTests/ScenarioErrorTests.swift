import SimulatorKit
import Testing

@Suite("Scenario errors")
struct ScenarioErrorTests {
    /// The boy's scenario with one substitution, parsed.
    func parseError(replacing old: String, with new: String) throws -> (ScenarioError, text: String) {
        let original = try Fixtures.text("normal-boy-10y")
        #expect(original.contains(old))
        let text = original.replacingOccurrences(of: old, with: new)
        do {
            _ = try ScenarioLoader.parse(text, file: "edited.toml")
            Issue.record("no error for \(new)")
            return (ScenarioError(file: "", message: ""), text)
        } catch {
            return (error, text)
        }
    }

    func line(of needle: String, in text: String) -> Int? {
        text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(needle) }.map { $0 + 1 }
    }

    @Test("an unknown key (a typo) is named, with its line")
    func unknownKey() throws {
        let (error, text) = try parseError(replacing: "collect_ml_min = 0.0", with: "colect_ml_min = 0.0")
        #expect(error.keyPath == "flows.colect_ml_min")
        #expect(error.line == line(of: "colect_ml_min", in: text))
        #expect(error.description.contains("unknown key 'colect_ml_min'"))
        #expect(error.description.hasPrefix("edited.toml:\(error.line!)"))
    }

    @Test("an unknown key in a timeline entry is named")
    func unknownTimelineKey() throws {
        let (error, text) = try parseError(replacing: "inlet_ml_min = 26.0", with: "inlet_flow = 26.0")
        #expect(error.keyPath == "timeline[1].inlet_flow")
        #expect(error.line == line(of: "inlet_flow", in: text))
    }

    @Test("a wrong type is named with what was expected")
    func wrongType() throws {
        let (error, text) = try parseError(replacing: "ac_ratio = 12.0", with: "ac_ratio = \"12:1\"")
        #expect(error.keyPath == "settings.ac_ratio")
        #expect(error.line == line(of: "ac_ratio =", in: text))
        #expect(error.message.contains("must be a number, found string"))
    }

    @Test("tick interval 0 and 61 are out of range")
    func tickIntervalRange() throws {
        for bad in ["0", "61"] {
            let (error, text) = try parseError(replacing: "tick_interval_s = 5", with: "tick_interval_s = \(bad)")
            #expect(error.keyPath == "settings.tick_interval_s")
            #expect(error.line == line(of: "tick_interval_s", in: text))
            #expect(error.message.contains("out of range: allowed 1-60 s"))
        }
    }

    @Test("a missing format line is an error")
    func missingFormat() throws {
        let (error, _) = try parseError(replacing: "format = \"optia-sim-scenario/1\"", with: "")
        #expect(error.keyPath == "format")
        #expect(error.message.contains("optia-sim-scenario/1"))
    }

    @Test("a wrong format version is an error naming both versions")
    func wrongVersion() throws {
        let (error, text) = try parseError(replacing: "optia-sim-scenario/1", with: "optia-sim-scenario/2")
        #expect(error.keyPath == "format")
        #expect(error.line == line(of: "format =", in: text))
        #expect(error.message.contains("optia-sim-scenario/2"))
    }

    @Test("an unknown action is named")
    func unknownAction() throws {
        let (error, text) = try parseError(replacing: "action = \"operator_note\"", with: "action = \"operator_notes\"")
        #expect(error.keyPath == "timeline[0].action")
        #expect(error.line == line(of: "operator_notes", in: text))
        #expect(error.message.contains("unknown action 'operator_notes'"))
    }

    @Test("a TOML syntax error carries TOMLKit's line")
    func syntaxError() throws {
        let (error, text) = try parseError(replacing: "weight_kg = 32", with: "weight_kg = = 32")
        #expect(error.line == line(of: "weight_kg", in: text))
        #expect(error.message.hasPrefix("not valid TOML"))
    }

    @Test("a missing required key, both targets, and an out-of-order timeline are errors")
    func semanticErrors() throws {
        let (missing, _) = try parseError(replacing: "ecv_ml = 191\n", with: "")
        #expect(missing.keyPath == "settings.ecv_ml")
        #expect(missing.message.hasPrefix("missing"))
        let (both, _) = try parseError(replacing: "target_tbv = 2.0", with: "target_tbv = 2.0\ntarget_wb_vol_ml = 4800")
        #expect(both.keyPath == "settings.target_tbv")
        let (order, _) = try parseError(replacing: "at_min = 8", with: "at_min = 0.5")
        #expect(order.keyPath == "timeline[1].at_min")
        let (sex, _) = try parseError(replacing: "sex = \"M\"", with: "sex = \"male\"")
        #expect(sex.keyPath == "patient.sex")
    }

    @Test("load(path:) names the file")
    func loadNamesFile() {
        #expect(throws: ScenarioError.self) { try ScenarioLoader.load(path: "/nonexistent/x.toml") }
        do {
            _ = try ScenarioLoader.load(path: "/nonexistent/x.toml")
        } catch {
            #expect(error.file == "/nonexistent/x.toml")
        }
    }
}
