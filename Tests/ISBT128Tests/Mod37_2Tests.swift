import ISBT128
import PropertyBased
import Testing

@Suite struct Mod37_2Tests {
    @Test func specExample() throws {
        // product-records.md and ST-001 v6.2.2 Appendix A.1: G1234 17 654321 -> checksum 10 -> A.
        #expect(try Mod37_2.checkCharacter(for: "G123417654321") == "A")
        #expect(try Mod37_2.checkValue(for: "G123417654321") == 10)
    }

    /// DINs printed with their boxed check character in ICCBBA's ISBT 128 Standard Technical
    /// Specification ST-001 v6.2.2 (April 2023), as stored in github.com/pdesiatnyk/ISBT128,
    /// documents/iccbba.md.
    @Test(arguments: [
        ("A999921123456", "3", "Figure 2, Donation Numbering"),
        ("W000009123456", "G", "section 7.4.1, flag characters 02"),
        ("A999818123456", "N", "section 7.5.1.1, printing the check character"),
        ("A999820123456", "E", "Figure 20, blood label"),
        ("A999917123456", "9", "Figure 21, tissue labels 1 and 3"),
        ("A999917123654", "Y", "Figure 21, tissue label 4"),
        ("A999917345628", "*", "Figure 22, cornea label"),
        ("A999917345658", "O", "Figure 22, sclera label"),
        ("A999915000001", "M", "Figure 23, human milk label"),
        ("A999918000001", "8", "Figure 23, second human milk label"),
    ])
    func iccbbaPrintedExamples(din: String, check: String, source: String) throws {
        #expect(try Mod37_2.checkCharacter(for: din) == Character(check), "\(source)")
        #expect(Mod37_2.isValid(din + check), "\(source)")
    }

    @Test func byHand() throws {
        // s = ((s + v) * 2) mod 37 over W000009123456 (W = 32):
        // 64%37=27, 54%37=17, 34, 68%37=31, 62%37=25, 50%37=13, (13+9)*2=44%37=7, (7+1)*2=16,
        // (16+2)*2=36, (36+3)*2=78%37=4, (4+4)*2=16, (16+5)*2=42%37=5, (5+6)*2=22;
        // check = (38 - 22) % 37 = 16 = G.
        #expect(try Mod37_2.checkCharacter(for: "W000009123456") == "G")
        // A999917345628 (A = 10): 20, 58%37=21, 60%37=23, 64%37=27, 72%37=35, 72%37=35,
        // 84%37=10, 26, 60%37=23, 56%37=19, 50%37=13, 30, 76%37=2; (38 - 2) % 37 = 36 = *.
        #expect(try Mod37_2.checkCharacter(for: "A999917345628") == "*")
        // "0": s = 0, check = 38 % 37 = 1.
        #expect(try Mod37_2.checkCharacter(for: "0") == "1")
        // "*" (36): s = 72 % 37 = 35, check = 3.
        #expect(try Mod37_2.checkCharacter(for: "*") == "3")
    }

    @Test func values() {
        #expect(Mod37_2.value(of: "0") == 0)
        #expect(Mod37_2.value(of: "9") == 9)
        #expect(Mod37_2.value(of: "A") == 10)
        #expect(Mod37_2.value(of: "Z") == 35)
        #expect(Mod37_2.value(of: "*") == 36)
        #expect(Mod37_2.value(of: "a") == nil)
        #expect(Mod37_2.value(of: "-") == nil)
    }

    @Test func isValidRefusesWrongAndEmpty() {
        #expect(Mod37_2.isValid("G123417654321A"))
        #expect(!Mod37_2.isValid("G123417654321B"))
        #expect(!Mod37_2.isValid("G123417654312A"))
        #expect(!Mod37_2.isValid(""))
        #expect(!Mod37_2.isValid("g123417654321A"))
    }

    @Test func characterOutsideTheAlphabetIsRefused() {
        expectError(
            .characterNotAllowed(
                .checkCharacterInput, position: 13, character: "a", rule: "mod 37-2 characters are 0-9, A-Z and *"),
            message: "mod 37-2 input: character 'a' at position 13 is not allowed "
                + "(mod 37-2 characters are 0-9, A-Z and *)."
        ) { _ = try Mod37_2.checkCharacter(for: "G12341765432a") }
    }

    @Test func detectsEverySingleSubstitutionAndAdjacentTransposition() async {
        await propertyCheck(count: 300, input: Generators.mod37String) { text in
            guard let check = try? Mod37_2.checkCharacter(for: text) else {
                Issue.record("no check character for \(text)")
                return
            }
            let whole = Array(text) + [check]
            #expect(Mod37_2.isValid(String(whole)))
            for i in whole.indices {
                for replacement in Alphabets.mod37 where replacement != whole[i] {
                    var changed = whole
                    changed[i] = replacement
                    #expect(!Mod37_2.isValid(String(changed)), "\(String(changed))")
                }
                if i + 1 < whole.count, whole[i] != whole[i + 1] {
                    var swapped = whole
                    swapped.swapAt(i, i + 1)
                    #expect(!Mod37_2.isValid(String(swapped)), "\(String(swapped))")
                }
            }
        }
    }
}
