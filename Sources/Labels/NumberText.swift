/// Numbers for PDF and SVG: plain decimal, at most three places, never an exponent and
/// never a locale's decimal comma.
enum NumberText {
    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let thousandths = (value * 1000).rounded()
        guard abs(thousandths) < 1e15 else { return "0" }
        let scaled = Int64(thousandths)
        let negative = scaled < 0
        let magnitude = negative ? -scaled : scaled
        var text = String(magnitude / 1000)
        var fraction = Int(magnitude % 1000)
        if fraction != 0 {
            var digits = 3
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
            let fractionText = String(fraction)
            text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
        }
        return negative && magnitude != 0 ? "-" + text : text
    }
}
