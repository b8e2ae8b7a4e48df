"""Meridian: seasonal email and SMS campaigns for clinics."""
