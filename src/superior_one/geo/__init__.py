"""Geography without a database: WGS84 geodesy, US ZIP codes and road miles."""
