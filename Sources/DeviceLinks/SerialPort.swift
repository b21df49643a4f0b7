import CSerialPort

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Serial ports through libserialport: 8 data bits, no parity, 1 stop bit,
/// no flow control (separator-interface.md, section 1).
public enum SerialPort {
    public static let allowedBaudRates = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]

    /// Opens `path` and returns a non-blocking descriptor the caller owns.
    /// Symlinks such as /dev/serial/by-id/... are resolved first, because
    /// libserialport rejects them.
    public static func open(path: String, baud: Int) throws(LinkError) -> Int32 {
        guard allowedBaudRates.contains(baud) else {
            throw LinkError("serial \(path): baud rate \(baud) is not one of \(allowedBaudRates.map(String.init).joined(separator: ", "))")
        }
        guard let resolvedPointer = realpath(path, nil) else {
            throw LinkError("serial \(path): \(SystemError("realpath", path).description)")
        }
        let resolved = String(cString: resolvedPointer)
        free(resolvedPointer)

        var port: OpaquePointer?
        try check(sp_get_port_by_name(resolved, &port), "serial \(path): no such serial port (\(resolved))")
        guard let port else { throw LinkError("serial \(path): libserialport returned no port") }
        defer { sp_free_port(port) }

        try check(sp_open(port, SP_MODE_READ_WRITE), "serial \(path): cannot open (is another program using it?)")
        var opened = true
        defer { if opened { sp_close(port) } }
        try check(sp_set_baudrate(port, Int32(baud)), "serial \(path): cannot set \(baud) baud")
        try check(sp_set_bits(port, 8), "serial \(path): cannot set 8 data bits")
        try check(sp_set_parity(port, SP_PARITY_NONE), "serial \(path): cannot set no parity")
        try check(sp_set_stopbits(port, 1), "serial \(path): cannot set 1 stop bit")
        try check(sp_set_flowcontrol(port, SP_FLOWCONTROL_NONE), "serial \(path): cannot turn flow control off")

        var handle: Int32 = -1
        try check(withUnsafeMutablePointer(to: &handle) { sp_get_port_handle(port, UnsafeMutableRawPointer($0)) },
                  "serial \(path): no descriptor")
        // Hand out a duplicate: libserialport closes its own on sp_close.
        let fd = dup(handle)
        guard fd >= 0 else { throw LinkError("serial \(path): \(SystemError("dup", path).description)") }
        do {
            try LineLock.acquire(fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        sp_close(port)
        opened = false
        Descriptor.setCloseOnExec(fd)
        do {
            try Descriptor.setNonBlocking(fd)
        } catch {
            close(fd)
            throw LinkError("serial \(path): \(error.description)")
        }
        return fd
    }

    private static func check(_ result: sp_return, _ context: @autoclosure () -> String) throws(LinkError) {
        guard result.rawValue < 0 else { return }
        var detail = ""
        if let message = sp_last_error_message() {
            detail = String(cString: message).trimmingTrailingNewlines
            sp_free_error_message(message)
        }
        throw LinkError(detail.isEmpty ? context() : "\(context()): \(detail)")
    }
}

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var s = self
        while let last = s.last, last == "\n" || last == "\r" { s.removeLast() }
        return s
    }
}

extension SerialPort {
    /// A port libserialport can see, with its USB identity when it has one.
    public struct Description: Sendable, Equatable {
        public var path: String
        public var usbSerialNumber: String?
        public var usbVendorID: UInt16?
        public var usbProductID: UInt16?
    }

    /// Every serial port on the machine (ptys are not listed: they are not under /sys/class/tty).
    public static func enumerate() -> [Description] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        guard sp_list_ports(&list).rawValue >= 0, let list else { return [] }
        defer { sp_free_port_list(list) }
        var result: [Description] = []
        var index = 0
        while let port = list[index] {
            index += 1
            guard let name = sp_get_port_name(port) else { continue }
            var description = Description(path: String(cString: name))
            if sp_get_port_transport(port) == SP_TRANSPORT_USB {
                if let serial = sp_get_port_usb_serial(port) { description.usbSerialNumber = String(cString: serial) }
                var vendor: Int32 = 0
                var product: Int32 = 0
                if sp_get_port_usb_vid_pid(port, &vendor, &product).rawValue >= 0 {
                    description.usbVendorID = UInt16(truncatingIfNeeded: vendor)
                    description.usbProductID = UInt16(truncatingIfNeeded: product)
                }
            }
            result.append(description)
        }
        return result
    }
}
