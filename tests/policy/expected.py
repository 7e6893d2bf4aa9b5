"""Table b of the domain notes, written out by hand as (consumer, purpose) -> {coordinate: form}.

This is the specification the shipped policies must reproduce; it is deliberately not derived from them.
"""

from __future__ import annotations

R, M, B, P, E, A = "raw", "masked", "band", "predicate", "exists", "aggregate"

IDENTITY_RAW = {
    f"Person.{f}": R
    for f in ("idNumber", "name", "sex", "birthDate", "areaCode", "hukouAddress", "relationToHead", "status")
}
HOUSEHOLD_RAW = {f"Household.{f}": R for f in ("householdId", "areaCode", "address", "size")}
CIVIL_RAW = {f"CivilAffairsRecord.{f}": R for f in ("tier", "startDate", "endDate", "monthlyAmount")} | {
    "CivilAffairsRecord.isRecipient": P
}

EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    ("civil_affairs", "VER"): IDENTITY_RAW
    | HOUSEHOLD_RAW
    | CIVIL_RAW
    | {
        "DisabilityRecord.isSevere": P,
        "MedicalRecord.outOfPocket12mBand": B,
        "EmploymentRecord.pensionType": R,
        "EmploymentRecord.pensionMonthly": R,
        "EmploymentRecord.unemployedRegistered": R,
        "EmploymentRecord.benefitEnd": R,
        "TaxRecord.year": R,
        "TaxRecord.annualWageIncome": R,
        "TaxRecord.businessIncome": R,
        "RealEstateRecord.propertyCount": R,
        "RealEstateRecord.totalAreaM2": R,
        "Property.addressMasked": M,
        "Property.areaM2": R,
        "Property.acquiredDate": R,
        "VehicleRecord.vehicleCount": R,
        "VehicleRecord.hasNonExemptCar": P,
        "Vehicle.plateMasked": M,
        "Vehicle.vehicleType": R,
        "Vehicle.use": R,
        "Vehicle.regDate": R,
        "BusinessRole.role": R,
        "BusinessRole.uscc": R,
        "BusinessRole.subscribedCapital": R,
        "ProvidentFundRecord.monthlyContribution": R,
        "ProvidentFundRecord.balanceBand": B,
        "EducationRecord.isFullTimeStudent": P,
    },
    ("civil_affairs", "MON"): {
        **{k: v for k, v in IDENTITY_RAW.items() if k not in ("Person.hukouAddress", "Person.status")},
        "Person.isDeceased": P,
        "Household.householdId": R,
        "Household.areaCode": R,
        "Household.size": R,
        "Household.addressMasked": M,  # monitoring: the street office an alert goes to
        **CIVIL_RAW,
        "DisabilityRecord.isSevere": P,
        "DisabilityRecord.changedWithinDays": P,
        "MedicalRecord.outOfPocket12mAtLeast": P,
        "MedicalRecord.outOfPocket12mBand": B,
        "MedicalRecord.hasChronicDisease": P,  # monitoring rule M11
        "EmploymentRecord.isUnemployed": P,
        "TaxRecord.incomeBand": B,
        "RealEstateRecord.acquiredLast12Months": P,
        "VehicleRecord.hasNonExemptCar": P,
        "BusinessRecord.hasBusinessRole": P,
        "ProvidentFundRecord.contributionsStopped": P,
        "EducationRecord.isFullTimeStudent": P,
        "EducationRecord.droppedOut": P,
    },
    ("civil_affairs", "CASE"): IDENTITY_RAW
    | HOUSEHOLD_RAW
    | CIVIL_RAW
    | {
        "DisabilityRecord.hasCertificate": E,
        "DisabilityRecord.category": R,
        "DisabilityRecord.grade": R,
        "DisabilityRecord.changeDate": R,
        "MedicalRecord.outOfPocket12mBand": B,
        "MedicalRecord.outOfPocket12mAtLeast": P,
        "MedicalRecord.hasChronicDisease": P,
        "EmploymentRecord.pensionMonthlyBand": B,
        "TaxRecord.incomeBand": B,
        "RealEstateRecord.totalAreaBand": B,
        "VehicleRecord.hasNonExemptCar": P,
        "BusinessRecord.hasBusinessRole": P,
        "EducationRecord.isFullTimeStudent": P,
        "EducationRecord.droppedOut": P,
    },
    ("civil_affairs", "REF"): {"DisabilityRecord.isSevere": P},
    ("civil_affairs", "STAT"): {
        "Statistics.residentsByArea": A,
        "Statistics.recipientsByTier": A,
        "Statistics.disabilityByGrade": A,
    },
    ("medical_security", "REF"): {
        "Person.idNumberMasked": M,
        "Person.nameMasked": M,
        "Household.addressMasked": M,
        "CivilAffairsRecord.isRecipient": P,
        "DisabilityRecord.isSevere": P,
        "MedicalRecord.outOfPocket12m": R,
    },
    ("education", "REF"): {
        "Person.idNumberMasked": M,
        "Person.nameMasked": M,
        "Household.addressMasked": M,
        "CivilAffairsRecord.isRecipient": P,
    },
    ("utilities", "REF"): {
        "Person.idNumberMasked": M,
        "Person.nameMasked": M,
        "Household.addressMasked": M,
        "CivilAffairsRecord.isRecipient": P,
    },
    ("disability", "REF"): {
        "Person.idNumberMasked": M,
        "Person.nameMasked": M,
        "Household.addressMasked": M,
        "CivilAffairsRecord.isRecipient": P,
    },
    ("hrss", "REF"): {
        "Person.idNumberMasked": M,
        "Person.nameMasked": M,
        "Household.addressMasked": M,
        "CivilAffairsRecord.isRecipient": P,
        "EmploymentRecord.isUnemployed": P,
        "BusinessRecord.hasBusinessRole": P,
    },
}
