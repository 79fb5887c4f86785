"""ONVIF (Profile S): a camera's streams, maker and clock from its address (`onvif://`), and
cameras found on the LAN by WS-Discovery. The SOAP is onvif-zeep-async's (Home Assistant's
ONVIF client), with WS-UsernameToken digest authentication."""
