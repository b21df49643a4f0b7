// DeviceLinks
