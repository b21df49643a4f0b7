/// The type of collection in the 6th data character of a product code, ST-001 Table 7 [RT008]
/// (data structure 003, the `t` of `αooootds`). Autologous apheresis products use
/// `forAutologousUseOnly`, code `1`.
public struct TypeOfCollection: Hashable, Sendable {
    public let code: Character
    public let meaning: String

    public init(code: Character) throws(ISBT128Error) {
        guard let found = Self.all.first(where: { $0.code == code }) else {
            throw .unknownTypeOfCollection(.typeOfCollection, code: code)
        }
        self = found
    }

    private init(_ code: Character, _ meaning: String) {
        self.code = code
        self.meaning = meaning
    }

    public static let forAutologousUseOnly = TypeOfCollection("1", "For autologous use only")

    /// Every code of ST-001 v6.2.2 Table 7, in the table's order.
    public static let all: [TypeOfCollection] = [
        TypeOfCollection("0", "Not specified (null value)"),
        TypeOfCollection("V", "Volunteer homologous (allogeneic) (default)"),
        TypeOfCollection("R", "Volunteer research (Product not intended for human application)"),
        TypeOfCollection("S", "Volunteer source"),
        TypeOfCollection("T", "Volunteer therapeutic"),
        TypeOfCollection("P", "Paid homologous (allogeneic)"),
        TypeOfCollection("r", "Paid research (Product not intended for human application)"),
        TypeOfCollection("s", "Paid source"),
        TypeOfCollection("A", "Autologous, eligible for crossover"),
        forAutologousUseOnly,
        TypeOfCollection("X", "For autologous use only, biohazard"),
        TypeOfCollection("D", "Volunteer directed, eligible for crossover"),
        TypeOfCollection("d", "Paid directed, eligible for crossover"),
        TypeOfCollection("2", "For directed recipient use only"),
        TypeOfCollection("L", "For directed recipient use only, limited exposure"),
        TypeOfCollection("E", "Medical exception, for specified recipient only (allogeneic)"),
        TypeOfCollection("Q", "See (i.e., read [scan]) Special Testing bar code"),
        TypeOfCollection("3", "For directed recipient use only, biohazard"),
        TypeOfCollection("4", "Designated"),
        TypeOfCollection("5", "Dedicated"),
        TypeOfCollection("6", "Designated, biohazard"),
        TypeOfCollection("F", "Family reserved"),
        TypeOfCollection("C", "Replacement"),
        TypeOfCollection("7", "For allogeneic use."),
        TypeOfCollection("8", "For autologous use. Contains allogeneic material."),
        TypeOfCollection("B", "Directed/Dedicated/Designated Collection Use Only"),
        TypeOfCollection("H", "Directed/Dedicated/Designated Collection/Biohazardous"),
        TypeOfCollection("J", "Directed/Dedicated/Designated Collection/Eligible for Crossover"),
        TypeOfCollection("G", "For Emergency Use Only"),
    ]
}
