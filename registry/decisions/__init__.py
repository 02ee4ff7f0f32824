"""Filing decisions: proposed by one reviewer, countersigned by another for risk tiers III and IV."""
