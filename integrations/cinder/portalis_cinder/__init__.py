"""Cinder volume driver for Portalis (``portalis_cinder.driver.PortalisVolumeDriver``)."""
