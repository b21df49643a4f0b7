# The hospital interface's outage test at full length (docs/hl7.md): the receiver away for ten
# minutes of wall time while the simulator plays at 1x, then the backlog caught up in order. The
# test suite runs the same test with the ten minutes of run time played at 60x.
.PHONY: hl7-outage
hl7-outage: deps hl7-venv
	$(SWIFT) build --build-tests
	APHERESISD_HL7_PYTHON=$(HL7_VENV)/bin/python APHERESISD_HL7_OUTAGE_SPEED=1 APHERESISD_HL7_OUTAGE_RUN_MINUTES=10 \
		$(SWIFT) test --skip-build --filter 'HL7InterfaceTests/aReceiverOutageIsCaughtUpInOrder'
