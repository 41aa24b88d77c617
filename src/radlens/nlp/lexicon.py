"""What the words mean: clinical terms -> radlens finding labels.

``TERMS`` maps each label to the phrases (regular expressions, lower case, matched on
word boundaries) that name it, abbreviations included (``ptx``, ``pna``, ``chf``). Where
two phrases overlap the longer wins, so "calcified granuloma" is not a bare granuloma and
"pericardial effusion" is not a pleural effusion; a phrase listed under two labels
("nodular opacity": nodule and opacity) makes a mention of each.

``NEGATIVE_TERMS`` are phrases that state a finding is absent without a negation word a
rule could see ("heart size is normal", "lungs are clear"): they make a negated mention.

Label decisions (also in ``docs/nlp.md``):

* ``opacity`` is its own label, not ``pneumonia``: opacity, consolidation, airspace
  disease and infiltrate are what a radiograph shows; pneumonia is a clinical diagnosis
  that a report states ("right lower lobe pneumonia"). Alignment with the pneumonia model
  reads both (``alignment.RELATED_LABELS``).
* ``effusion`` means pleural effusion. ``edema`` means pulmonary edema; vascular
  congestion and heart failure have their own labels.
* ``normal`` is a statement ("no acute cardiopulmonary abnormality", "normal chest"); a
  report *is* normal when it asserts no abnormality of any label (``ABNORMAL_LABELS``).

Example:
    >>> LABELS["effusion"]
    'pleural effusion'
"""

from __future__ import annotations

NORMAL = "normal"

CHEST_FINDINGS = (
    "normal",
    "cardiomegaly",
    "effusion",
    "opacity",
    "atelectasis",
    "nodule",
    "emphysema",
    "pneumothorax",
    "edema",
)
"""The nine chest radiograph labels the benchmark scores (macro-F1 is over these)."""

MODEL_CODES = (
    "pneumonia",
    "breast_malignancy",
    "diabetic_retinopathy",
    "intracranial_aneurysm",
    "adrenal_hyperplasia",
    "knee_osteoarthritis",
    "fracture",
)
"""Finding codes of the shipped classifiers (``zoo/*/card.json``); the segmentation and
detection models measure and count, and state nothing notes could contradict."""

LABELS: dict[str, str] = {
    "normal": "normal",
    "cardiomegaly": "cardiomegaly",
    "effusion": "pleural effusion",
    "opacity": "lung opacity",
    "atelectasis": "atelectasis",
    "nodule": "nodule",
    "emphysema": "emphysema",
    "pneumothorax": "pneumothorax",
    "edema": "pulmonary edema",
    "pneumonia": "pneumonia",
    "infection": "infection",
    "breast_malignancy": "breast malignancy",
    "diabetic_retinopathy": "diabetic retinopathy",
    "intracranial_aneurysm": "intracranial aneurysm",
    "adrenal_hyperplasia": "adrenal hyperplasia",
    "knee_osteoarthritis": "knee osteoarthritis",
    "mass": "mass",
    "density": "focal density",
    "granuloma": "granuloma",
    "scarring": "scarring",
    "fibrosis": "fibrosis",
    "interstitial": "interstitial lung disease",
    "copd": "chronic obstructive pulmonary disease",
    "hyperinflation": "hyperinflated lungs",
    "hypoinflation": "low lung volumes",
    "congestion": "vascular congestion",
    "heart_failure": "heart failure",
    "pericardial_effusion": "pericardial effusion",
    "blunting": "blunted costophrenic angle",
    "pleural_thickening": "pleural thickening",
    "diaphragm": "diaphragm abnormality",
    "hernia": "hiatal hernia",
    "aorta": "aortic abnormality",
    "calcification": "calcification",
    "mediastinum": "mediastinal abnormality",
    "hilar": "hilar abnormality",
    "lymphadenopathy": "lymphadenopathy",
    "fracture": "fracture",
    "bone": "bone abnormality",
    "spine": "spine abnormality",
    "device": "device",
    "surgery": "postsurgical change",
    "lucency": "lucency",
    "airway": "airway abnormality",
    "technical": "limited study",
    "malignancy": "malignancy",
    "tuberculosis": "tuberculosis",
    "foreign_body": "foreign body",
    "other": "other abnormality",
}
"""Every label code -> its words."""

ABNORMAL_LABELS = frozenset(LABELS) - {NORMAL, "technical"}
"""Labels whose presence makes a report not normal (a limited study says nothing of the
patient)."""

_SIZE = r"(?:(?:very |slightly |mildly |moderately |markedly |severely |significantly )?"
_SIZE += r"(?:small|tiny|trace|large|moderate|minimal|mild|massive|bilateral|right|left|"
_SIZE += r"loculated|layering|subpulmonic|residual|new|persistent|chronic|small to moderate)"
_SIZE += r"[ -])*"

TERMS: dict[str, tuple[str, ...]] = {
    "normal": (
        r"normal (?:chest|study|exam(?:ination)?|radiographs?|x-?rays?|cxr)",
        r"(?:no|negative for|without) (?:\w+ of )?(?:any |an )?(?:acute|active) "
        r"(?:cardiopulmonary |pulmonary |intrathoracic |chest |cardiac |lung |osseous "
        r"|bony |thoracic |radiographic |cardiothoracic )*(?:disease|abnormalit(?:y|ies)"
        r"|process(?:es)?|findings?|pathology|change|pneumonia)",
        r"(?:no|negative for) acute (?:disease|abnormalit(?:y|ies)|findings?)",
        r"no (?:radiographic |x-?ray )?evidence of (?:acute |active )?(?:cardiopulmonary |"
        r"intrathoracic )?disease",
        r"unremarkable (?:chest|study|exam(?:ination)?|radiographs?)",
        r"no (?:significant|active|acute) (?:interval )?(?:cardiopulmonary )?abnormalit(?:y|ies)",
    ),
    "cardiomegaly": (
        r"cardiomegaly",
        r"cardiac (?:enlargement|hypertrophy)",
        r"(?:enlarged|enlargement of the|large) (?:heart|cardiac (?:silhouette|"
        r"shadow|contour|size)|cardiomediastinal silhouette)",
        r"(?:heart|cardiac (?:silhouette|shadow|contours?|size)|cardiomediastinal silhouette|"
        r"heart size)(?: and \w+(?: \w+)?)? (?:xxxx )?(?:is |are |appears |remains |size is )?"
        r"(?:again |still )?(?:mildly |moderately |markedly |severely |slightly |significantly |"
        r"top |stably |borderline )?(?:enlarged|increased|large)",
        r"(?:heart|cardiac) enlargement",
        r"borderline (?:enlarged heart|enlargement of the heart|heart size|cardiac size)",
        r"(?:heart|cardiac silhouette) (?:is |appears )?borderline (?:in )?size",
        r"cardiomyopathy",
        r"enlarged cardiomediastinal silhouette",
    ),
    "effusion": (
        _SIZE + r"(?:pleural )?effusions?",
        r"pleural fluid",
        r"hydrothorax",
        r"fluid (?:in|within) the (?:\w+ )?(?:fissure|pleural space)",
        r"effusions? (?:is|are) (?:present|seen|noted)",
    ),
    "opacity": (
        r"(?:air ?-?space|alveolar|interstitial|parenchymal|lung|pulmonary|patchy|hazy|"
        r"streaky|focal|confluent|reticular|reticulonodular|linear|nodular|ground glass|"
        r"basilar|bibasilar|bibasal|basal|perihilar|retrocardiac)? ?"
        r"(?:opacit(?:y|ies)|opacification|consolidations?|consolidative|infiltrates?|"
        r"infiltration|airspace disease|air space disease)",
        r"air ?space (?:disease|process|opacit(?:y|ies))",
        r"(?:patchy|hazy) (?:density|densities)",
        r"ground-glass",
    ),
    "atelectasis": (
        r"(?:sub)?segmental atelectasis",
        r"atelecta(?:sis|ses|tic)",
        r"(?:plate|discoid|platelike|plate-like|linear) atelectasis",
        r"collapse(?:d)? (?:of )?(?:the )?(?:\w+ ){0,3}(?:lobe|lung)",
        r"lobar collapse",
    ),
    "nodule": (
        r"(?:pulmonary |lung |noncalcified |non-calcified |soft tissue |nodular |"
        r"(?:partially |densely )?calcified )?nodules?",
        r"nodular (?:lesions?|irregularit(?:y|ies))",
        r"fibronodular(?: \w+)?",
        r"nodularity",
        r"spn",
    ),
    "density": (
        r"(?:vague |focal |round(?:ed)? |nodular |soft tissue )+(?:density|densities)",
        r"round(?:ed)? opacity",
    ),
    "emphysema": (
        r"emphysema(?:tous)?",
        r"bullous (?:change|disease|lung)",
        r"bullae",
        r"bulla",
    ),
    "pneumothorax": (r"(?:hydro)?pneumothora(?:x|ces)", r"ptx"),
    "edema": (
        r"(?:pulmonary |interstitial |alveolar |perihilar )?(?:o)?edema",
        r"fluid overload",
        r"kerley b lines",
    ),
    "pneumonia": (
        r"(?:broncho)?pneumonias?",
        r"pna",
        r"pneumonitis",
        r"aspiration",
    ),
    "infection": (
        r"(?:acute |atypical |chronic )?(?:infectious|inflammatory) (?:process|infiltrates?|"
        r"changes?|disease)",
        r"(?:lung|pulmonary|chest|respiratory|atypical|opportunistic) infections?",
        r"infection",
    ),
    "breast_malignancy": (
        r"breast (?:cancer|carcinoma|malignancy|ca)",
        r"(?:invasive |infiltrating )?(?:ductal|lobular) carcinoma(?: in situ)?",
        r"idc",
        r"dcis",
        r"bi-?rads (?:category )?[45][abc]?",
        r"malignant (?:breast )?(?:mass|lesion|tumou?r)(?: of the breast)?",
    ),
    "diabetic_retinopathy": (
        r"(?:non-?proliferative |proliferative )?diabetic retinopathy",
        r"npdr",
        r"pdr",
        r"diabetic maculopathy",
        r"diabetic macular (?:o)?edema",
    ),
    "intracranial_aneurysm": (
        r"(?:intracranial|cerebral|brain|berry|saccular|fusiform) aneurysms?",
        r"aneurysms? of the (?:\w+ )?(?:cerebral|communicating|basilar|carotid) artery",
        r"(?:acom|pcom|mca|aca|ica|basilar tip|basilar) aneurysms?",
    ),
    "adrenal_hyperplasia": (
        r"adrenal (?:gland )?hyperplasia",
        r"congenital adrenal hyperplasia",
        r"cah",
        r"(?:enlarged|thickened|bulky) adrenal(?: gland)?s?",
    ),
    "mass": (r"mass(?:es)?", r"mass lesions?", r"tumou?rs?", r"neoplasms?"),
    "granuloma": (
        r"(?:calcified |noncalcified |non-calcified )?granulomas?",
        r"granulomata",
        r"granulomatous (?:disease|changes?|process|infection|sequela|sequelae)",
        r"calcified (?:lymph nodes?|nodes?|densit(?:y|ies)|foci|focus)",
        r"(?:calcified )?hilar (?:and mediastinal )?(?:calcifications?|lymph nodes)",
        r"healed granulomatous disease",
    ),
    "scarring": (
        r"scar(?:ring|s)?",
        r"cicatri(?:x|ces)",
        r"fibrotic changes?",
        r"post-?inflammatory changes?",
        r"parenchymal (?:bands?|scarring)",
    ),
    "fibrosis": (r"fibrosis", r"fibrotic", r"honeycombing"),
    "interstitial": (
        r"interstitial (?:lung )?(?:disease|markings?|prominence|changes?|pattern|thickening)",
        r"(?:increased|prominent|coarse|coarsened|chronic) (?:interstitial |lung |"
        r"bronchovascular |pulmonary )?markings",
        r"reticular (?:markings|pattern|changes?)",
    ),
    "copd": (r"copd", r"chronic obstructive (?:pulmonary|lung) disease", r"chronic lung disease"),
    "hyperinflation": (
        r"hyperinflat(?:ion|ed)",
        r"hyperexpan(?:ded|sion)",
        r"hyper-?expanded",
        r"hyperaerat(?:ed|ion)",
        r"(?:lungs are |lungs )?(?:mildly |moderately )?(?:overinflated|over-?expanded)",
        r"flatten(?:ed|ing) (?:of the )?(?:hemi)?diaphragms?",
        r"hyperlucen(?:t|cy)",
    ),
    "hypoinflation": (
        r"lung volumes (?:are )?(?:\w+ )?(?:decreased|low|reduced|diminished)",
        r"(?:low|decreased|reduced|diminished|shallow) (?:lung )?(?:volumes?|inspiration|"
        r"inspiratory (?:volumes?|effort))",
        r"hypoinflat(?:ion|ed)",
        r"hypoventilat(?:ion|ory)",
        r"poor(?:ly)? inspirat(?:ion|ory effort)",
        r"(?:bronchovascular )?crowding",
        r"underinflat(?:ion|ed)",
    ),
    "congestion": (
        r"(?:pulmonary |central |mild |venous |vascular )*(?:vascular )?congestion",
        r"(?:pulmonary )?vascular (?:prominence|engorgement|redistribution|cephalization)",
        r"cephalization",
        r"prominent (?:\w+ )?(?:vasculature|vascularity|vessels)",
    ),
    "heart_failure": (r"chf", r"(?:congestive )?heart failure", r"cardiac decompensation"),
    "pericardial_effusion": (r"pericardial effusions?",),
    "blunting": (
        r"blunt(?:ing|ed) (?:of )?(?:the )?(?:\w+ )?(?:costophrenic|cp) (?:angles?|sulc(?:us|i))",
        r"(?:costophrenic|cp) (?:angles?|sulc(?:us|i)) (?:is |are )?(?:\w+ )?blunt(?:ed|ing)",
        r"blunting",
    ),
    "pleural_thickening": (
        r"pleural (?:thickening|plaques?|calcifications?)",
        r"(?:apical|biapical) (?:pleural )?(?:thickening|capping|scarring)",
        r"pleural-parenchymal",
        r"pleuroparenchymal",
    ),
    "diaphragm": (
        r"(?:elevat(?:ed|ion)(?: of)? (?:the )?(?:\w+ )?(?:hemi)?diaphragms?)",
        r"(?:hemi)?diaphragms? (?:is |are )?(?:\w+ )?elevated",
        r"eventration",
        r"diaphragmatic (?:eventration|elevation|hernia)",
        r"(?:elevated|high) (?:right|left) hemidiaphragm",
    ),
    "hernia": (r"hiatal hernias?", r"hiatus hernias?", r"hernias?"),
    "aorta": (
        r"tortu(?:ous|osity)(?: of)?(?: the)? (?:\w+ )?aort(?:a|ic)",
        r"aort(?:a|ic (?:arch|knob|contour))? (?:is |are )?(?:\w+ )?(?:tortuous|ectatic|"
        r"unfolded|dilated|enlarged|calcified|prominent)",
        r"(?:ectatic|unfolded|unfolding of the|dilated|tortuous|calcified|atherosclerotic|"
        r"ectasia of the|uncoiled|prominent) (?:\w+ (?:and )?){0,3}(?:aorta|aortic (?:arch|knob))",
        r"(?:aortic|vascular|arterial) (?:atherosclerosis|calcifications?|atheromatous)",
        r"atheroscleros[ie]s|atherosclerotic(?: disease| changes?| calcifications?)?",
        r"aneurysm(?:al)?",
    ),
    "calcification": (
        r"calcifications?",
        r"calcified (?:\w+ )?(?:plaques?|cartilage|granuloma)",
        r"calcinosis",
        r"calcified (?:\w+ ){0,3}(?:lymph|nodes?|hilar|hila|hilum|paratracheal|mediastinal|"
        r"suprahilar|infrahilar|subcarinal)",
    ),
    "mediastinum": (
        r"(?:widened|widening of the|enlarged|prominent) (?:superior )?mediastin(?:um|al "
        r"(?:silhouette|contour|width))",
        r"mediastinal (?:widening|mass|shift|lymphadenopathy|prominence)",
    ),
    "hilar": (
        r"(?:bi)?hilar (?:prominence|fullness|enlargement|adenopathy)",
        r"prominen(?:ce|t) (?:of )?(?:the )?(?:\w+ )?hil(?:um|ar|a)(?: contours?)?",
        r"(?:prominent|enlarged|fullness of the|full|bulky) (?:right |left |bilateral )?"
        r"hil(?:a|um|ar)",
    ),
    "lymphadenopathy": (r"(?:lymph)?adenopathy", r"enlarged (?:lymph )?nodes?"),
    "fracture": (r"fractures?", r"fx", r"fractured"),
    # Knee only: chest reports' "degenerative changes" and "arthritis" stay under "bone"
    # and "spine"; a knee film's report names the joint.
    "knee_osteoarthritis": (
        r"(?:knee|tibiofemoral|femorotibial|patellofemoral)s?(?: joints?)?:? (?:\w+,? ){0,3}"
        r"(?:osteoarthritis|osteoarthrosis|gonarthrosis|degenerative (?:joint )?"
        r"(?:disease|changes?)|joint space narrowing|osteophytes?)",
        r"(?:osteoarthritis|osteoarthrosis|degenerative (?:joint )?(?:disease|changes?)|"
        r"joint space narrowing|osteophytes?) (?:\w+ ){0,3}(?:of |in |at )?(?:the )?"
        r"(?:\w+ )?(?:knees?|tibiofemoral|patellofemoral)",
        r"gonarthrosis",
        r"kellgren[- ]lawrence (?:grade )?[1-4]",
    ),
    "bone": (
        r"(?:osteopenia|osteopenic|osteoporosis|demineraliz(?:ed|ation))",
        r"(?:lytic|sclerotic|blastic) (?:lesions?|foci|metastas[ie]s)",
        r"(?:\w+ )?deformit(?:y|ies)",
        r"bone islands?",
        r"(?:sclerosis|sclerotic)",
        r"arthritis|arthritic|arthropathy",
        r"(?:healed|old) (?:\w+ )?rib",
    ),
    "spine": (
        r"(?:degenerative|spondylotic|arthritic) (?:disc |joint |endplate |bony )?(?:changes?|"
        r"disease)",
        r"degenerative",
        r"degeneration",
        r"spondylosis",
        r"osteophyt(?:es?|osis|ic)",
        r"(?:dextro|levo|thoraco|thoracolumbar |lumbar |thoracic )?(?:scoliosis|scoliotic)",
        r"kyphosis|kyphotic|kyphoscoliosis|lordosis|lordotic|hyperkyphosis",
        r"(?:spine|spinal|endplate|vertebral|bony) (?:spurring|changes|spurs?)",
        r"spurring|spurs",
        r"(?:compression|wedge|wedging) (?:fractures?|deformit(?:y|ies))",
        r"(?:vertebral|vertebra) (?:body )?(?:height loss|compression|fracture|deformity)",
        r"dish",
        r"spinal (?:fusion|hardware|rods?)",
        r"vertebroplasty|kyphoplasty",
        r"curvature of the (?:\w+ )?spine",
    ),
    "device": (
        r"(?:pacemaker|pacer|defibrillator|aicd|icd)(?: leads?| wires?| generator)?",
        r"(?:central venous )?catheters?",
        r"picc(?: line)?",
        r"port-?a-?cath|(?:chest|power|mediport|venous) port",
        r"(?:endotracheal|et|nasogastric|ng|feeding|enteric|chest|gastric|tracheostomy) tubes?",
        r"tracheostomy",
        r"(?:central|venous|subclavian|jugular) (?:line|catheter)s?",
        r"(?:surgical )?(?:clips?|staples?|sutures?)",
        r"stents?",
        r"(?:sternotomy )?wires?",
        r"hardware|prosthes[ie]s|prosthetic|implants?|leads?|electrodes?|devices?",
        r"(?:valve (?:replacement|prosthesis)|prosthetic valve|annuloplasty ring)",
        r"(?:monitoring|ekg|ecg) (?:leads|wires)",
        r"drain|drains|shunt|coil|coils|filter",
        r"(?:nerve|spinal cord|vagal|neuro) ?stimulators?|generator|loop recorder",
        r"gastrostomy(?: tube)?|g-tube|j-tube",
        r"tip (?:is |again )?(?:\w+ )?(?:in|at|overlying|projecting|overlies|terminates|"
        r"within|near|over)",
    ),
    "surgery": (
        r"(?:median )?sternotomy",
        r"cabg",
        r"(?:post-?surgical|postoperative|post-?operative) (?:changes?|appearance)",
        r"(?:lobectomy|pneumonectomy|mastectomy|cholecystectomy|thoracotomy|esophagectomy|"
        r"wedge resection|resection)",
        r"(?:status post|s/p) (?:\w+ )?(?:surgery|repair|resection|bypass)",
    ),
    "lucency": (r"lucenc(?:y|ies)", r"lucent", r"cavit(?:y|ies|ary|ation)", r"cysts?|cystic"),
    "airway": (
        r"bronchiectasis",
        r"(?:peribronchial|bronchial|bronchovascular|airway) (?:wall )?(?:thickening|cuffing)",
        r"bronchitis",
        r"(?:reactive )?airway disease",
        r"tracheal (?:deviation|narrowing|shift)",
        r"asthma",
    ),
    "technical": (
        r"(?:patient )?rotat(?:ion|ed)",
        r"(?:limited|suboptimal|degraded|nondiagnostic|non-diagnostic) (?:\w+ )?"
        r"(?:study|exam(?:ination)?|evaluation|view|films?|radiographs?|inspiration)",
        r"(?:under|over)-?(?:penetrated|exposed)",
        r"(?:motion|positioning|overlying|soft tissue) artifacts?",
        r"excluded from (?:the )?(?:field of view|image|film)",
    ),
    "malignancy": (
        r"malignan(?:cy|cies|t)",
        r"metasta(?:sis|ses|tic)",
        r"carcinoma|cancer|lymphoma|sarcoma|mesothelioma",
    ),
    "tuberculosis": (r"tuberculosis", r"tb", r"mycobacterial"),
    "foreign_body": (
        r"foreign bod(?:y|ies)",
        r"bullets?|shrapnel|pellets?|buckshot|projectile|piercings?",
    ),
    "other": (
        r"azygos (?:lobe|fissure)",
        r"(?:pectus|chest wall) (?:excavatum|carinatum|deformity)",
        r"pneumomediastinum|pneumoperitoneum|subcutaneous (?:air|emphysema)",
        r"free (?:intraperitoneal )?air",
        r"nipple shadows?",
        r"(?:dextrocardia|situs inversus|right-sided aortic arch)",
        r"(?:thickened|thickening of the) (?:minor |major )?fissures?",
        r"(?:fluid|density) in the (?:minor |major )?fissure",
        r"(?:epicardial|pericardial) fat(?: pad)?",
        r"(?:volume loss|loss of volume)",
        r"(?:air|fluid) (?:fluid )?levels?",
        r"(?:elevated|widened|abnormal|lobulated) (?:\w+ )?(?:contour|silhouette|angle)",
        r"obscur(?:ed|es|ing|ation)",
        r"(?:soft tissue|laryngeal|extremity|ankle|leg) (?:edema|swelling)",
    ),
}
"""Label -> the phrases that name it (regular expressions on lower-case text)."""

NEGATIVE_TERMS: dict[str, tuple[str, ...]] = {
    "cardiomegaly": (
        r"(?:normal|unremarkable|stable normal) (?:heart size|heart|cardiac size|"
        r"cardiac silhouette|cardiomediastinal silhouette|cardiac shadow)",
        r"(?:heart|heart size|cardiac size|cardiac silhouette|cardiomediastinal silhouette|"
        r"cardiac (?:and|&) mediastinal (?:contours|silhouettes?)|"
        r"cardiomediastinal contours?|cardiac contours?)"
        r"(?: and [a-z ]{3,40}?)? (?:is |are |appears? |remains? |appear to be |size is )?"
        r"(?:stable(?: and)? )?(?:grossly |overall )?"
        r"(?:normal|within normal limits|unremarkable|not enlarged|upper normal|"
        r"(?:at )?(?:the )?upper limits? (?:of )?normal|"
        r"stable and normal|(?:at|within) (?:the )?(?:upper )?(?:limits|range) of normal)"
        r"(?: in (?:size|contour|size and contour))?",
        r"(?:heart|cardiac silhouette) (?:is |appears )?(?:normal|within normal limits) "
        r"(?:in|for) size",
        r"no cardiomegaly",
    ),
    "opacity": (
        r"(?:the )?lungs? (?:fields |parenchyma )?(?:is |are |appears? |remains? )?"
        r"(?:grossly |otherwise |again |well expanded and |well-expanded and )?clear"
        r"(?! of)",
        r"clear lungs?",
    ),
}
"""Label -> phrases that state the finding is absent (a negated mention)."""
