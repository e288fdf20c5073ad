"""Hand-written material for the LESS-style demo instruction pool (capheads demo).

Written or templated for capheads, not taken from Flan v2, CoT, Dolly or Open Assistant; the
generator (make_handmade.py) turns it into records shaped like the LESS training pool."""

# (template with {a} {b} {c} {n}, solver returning (reasoning, answer))
MATH = [
    ("A baker makes {a} loaves every morning and sells {b} of them by noon. How many loaves are left at noon?",
     lambda a, b, c, n: ("{a} - {b} = {r}.".format(a=a, b=b, r=a - b), a - b)),
    ("Tom reads {a} pages a day. How many pages does he read in {n} days?",
     lambda a, b, c, n: ("{a} * {n} = {r}.".format(a=a, n=n, r=a * n), a * n)),
    ("A shirt costs ${a}. It is on sale for {p}% off. What is the sale price in dollars?",
     None),  # filled in by the generator with a percent
    ("Mia has {a} marbles and gives {b} to each of her {n} friends. How many marbles does she have left?",
     lambda a, b, c, n: ("She gives away {b} * {n} = {g}, so {a} - {g} = {r}.".format(b=b, n=n, g=b * n, a=a, r=a - b * n), a - b * n)),
    ("A garden is {a} meters long and {b} meters wide. What is its area in square meters?",
     lambda a, b, c, n: ("Area = {a} * {b} = {r}.".format(a=a, b=b, r=a * b), a * b)),
    ("A train travels at {a} km per hour for {n} hours. How far does it go in kilometers?",
     lambda a, b, c, n: ("Distance = {a} * {n} = {r}.".format(a=a, n=n, r=a * n), a * n)),
    ("Sara is {a} years old. Her father is {b} years older than her. How old will her father be in {n} years?",
     lambda a, b, c, n: ("Her father is {a} + {b} = {f} now, so in {n} years he will be {f} + {n} = {r}.".format(a=a, b=b, f=a + b, n=n, r=a + b + n), a + b + n)),
    ("A class of {a} students is split into groups of {n}. How many full groups are there and how many students are left over?",
     lambda a, b, c, n: ("{a} // {n} = {q} groups with {a} % {n} = {m} left over.".format(a=a, n=n, q=a // n, m=a % n), "%d groups, %d left over" % (a // n, a % n))),
    ("A farmer has {a} chickens and {b} cows. How many legs do the animals have in total?",
     lambda a, b, c, n: ("Chickens: {a} * 2 = {x}; cows: {b} * 4 = {y}; total {x} + {y} = {r}.".format(a=a, b=b, x=2 * a, y=4 * b, r=2 * a + 4 * b), 2 * a + 4 * b)),
    ("Pencils cost ${n} each and notebooks cost ${c} each. How much do {a} pencils and {b} notebooks cost?",
     lambda a, b, c, n: ("{a} * {n} + {b} * {c} = {x} + {y} = {r}.".format(a=a, n=n, b=b, c=c, x=a * n, y=b * c, r=a * n + b * c), a * n + b * c)),
]

PASSAGES = [
    ("The town council voted to close Main Street to cars on Sundays. Shop owners were worried at first, "
     "but after three months most reported more customers, because families came to walk and eat outside.",
     "Why did shop owners change their minds about the Sunday closure?",
     "Most of them saw more customers, since families came to walk and eat outside."),
    ("Marta planted her tomatoes in early April, but a late frost killed half of them. She replanted in May "
     "under plastic covers, and by August she had more tomatoes than she could eat.",
     "What killed half of Marta's tomatoes?", "A late frost in spring."),
    ("The museum's new exhibit shows tools used by coal miners in the 1800s, including lamps, picks and a "
     "canary cage. Miners took canaries underground because the birds reacted to dangerous gas before people did.",
     "Why did miners take canaries underground?",
     "The birds reacted to dangerous gas before people did, so they served as an early warning."),
    ("After the bridge closed for repairs, the ferry became the only way across the river. The ferry company "
     "added two extra boats and ran them every fifteen minutes during rush hour.",
     "How did the ferry company respond to the bridge closure?",
     "It added two extra boats and ran them every fifteen minutes at rush hour."),
    ("Leo wanted to learn the violin, but his family could not afford lessons. His neighbor, a retired "
     "teacher, offered to teach him for free if Leo walked her dog every afternoon.",
     "What did Leo do in exchange for violin lessons?", "He walked his neighbor's dog every afternoon."),
    ("The expedition reached the summit at dawn on the third day. Clouds hid the view, so the climbers "
     "stayed only ten minutes before starting down to avoid an approaching storm.",
     "Why did the climbers stay only ten minutes at the summit?",
     "Clouds hid the view and a storm was approaching, so they started down."),
    ("In the village of Orla, the bakery is also the post office. Every morning the baker sorts the mail "
     "between batches of bread, and customers pick up letters with their rolls.",
     "What else does the bakery in Orla serve as?", "The village post office."),
    ("The school replaced its old heating system with heat pumps. Heating bills fell by a third in the "
     "first winter, and the savings paid for new library books.",
     "What did the school do with the money it saved on heating?", "It bought new library books."),
]

SCIENCE = [
    ("Why is the sky blue?", "Sunlight is scattered by air molecules, and shorter blue wavelengths scatter much more than red ones (Rayleigh scattering), so blue light reaches our eyes from all directions."),
    ("What is the difference between weather and climate?", "Weather is the state of the atmosphere at a given time and place; climate is the average pattern of weather over many years."),
    ("How do vaccines work?", "They expose the immune system to a harmless form or part of a germ so it learns to recognize it and can respond quickly to a real infection."),
    ("Why do objects fall at the same rate in a vacuum?", "Without air resistance, gravity gives every object the same acceleration, about 9.8 m/s^2 near Earth's surface, regardless of mass."),
    ("What is photosynthesis?", "The process by which plants use light energy to turn carbon dioxide and water into glucose and oxygen."),
    ("Why does ice float on water?", "Water expands when it freezes, so ice is less dense than liquid water."),
    ("What causes the seasons?", "The tilt of Earth's axis: each hemisphere receives more direct sunlight for part of the year."),
    ("What is an element?", "A pure substance made of only one kind of atom, defined by the number of protons in its nucleus."),
    ("How does a lever make work easier?", "By trading distance for force: a small force over a long distance moves a heavy load a short distance around the fulcrum."),
    ("What is DNA?", "The molecule that carries genetic instructions in living things, made of two strands of nucleotides in a double helix."),
    ("Why do metals feel cold to the touch?", "They conduct heat away from your skin quickly, even when they are at room temperature."),
    ("What is the water cycle?", "The continuous movement of water by evaporation, condensation, precipitation and collection."),
    ("What is an ecosystem?", "A community of living things interacting with each other and with their physical environment."),
    ("What makes a rainbow?", "Sunlight is refracted, reflected and dispersed inside raindrops, which separates it into its colors."),
    ("Why do we have tides?", "Mainly the Moon's gravity pulls on the oceans, raising bulges of water on the sides of Earth facing toward and away from it."),
]

COMMONSENSE = [
    ("I left my ice cream on the table in the sun for an hour. What will I find?", "Most likely a puddle of melted ice cream."),
    ("Is it a good idea to wear sandals to go hiking in the snow?", "No. Your feet would get cold and wet; insulated waterproof boots are better."),
    ("My phone is at 2% battery and I have a long trip. What should I do?", "Charge it before leaving or bring a charger or power bank."),
    ("Why do people whisper in a library?", "To avoid disturbing others who are reading or studying."),
    ("Can you use a fork to eat soup?", "Not well: the liquid runs through the tines. A spoon is the right tool."),
    ("Someone is knocking at the door while I am in the shower. What can I do?", "Call out that you will be there in a minute, or let them come back later."),
    ("What would happen if you put a metal spoon in a microwave?", "It can spark and damage the microwave, so you should not do it."),
    ("Why do people carry umbrellas when the sky is gray?", "Gray clouds often mean rain, and an umbrella keeps them dry."),
    ("If a glass is full to the brim and I add an ice cube, what happens?", "Some water will spill over the edge."),
    ("Is it polite to answer a phone call in the middle of a movie at the cinema?", "No, it disturbs other viewers; step outside if the call is urgent."),
    ("My plant's leaves are turning yellow and the soil is soaked. What is likely wrong?", "It is probably overwatered; let the soil dry out and water less often."),
    ("Why do people lock their bikes?", "So that nobody can steal them while they are away."),
]

PROFESSIONAL = [
    ("What is the difference between a misdemeanor and a felony?", "In U.S. law a felony is a serious crime usually punishable by more than a year in prison; a misdemeanor is a lesser offense with a shorter jail term or a fine."),
    ("What does 'consideration' mean in contract law?", "Something of value that each party gives or promises in exchange for the other's promise; without it, most contracts are not enforceable."),
    ("What is the hearsay rule?", "An out-of-court statement offered to prove the truth of what it asserts is generally inadmissible in evidence, subject to many exceptions."),
    ("What is adverse possession?", "A doctrine under which someone who openly and continuously occupies another's land for a statutory period can acquire title to it."),
    ("What are the classic symptoms of a heart attack?", "Chest pain or pressure, pain spreading to the arm, jaw or back, shortness of breath, sweating and nausea; call emergency services immediately."),
    ("What is the first-line treatment for uncomplicated high blood pressure?", "Lifestyle changes plus, when needed, a thiazide diuretic, ACE inhibitor, ARB or calcium channel blocker, chosen by the clinician for the patient."),
    ("What is the difference between type 1 and type 2 diabetes?", "Type 1 is autoimmune destruction of insulin-producing cells; type 2 is insulin resistance with relative insulin deficiency, strongly linked to lifestyle."),
    ("What does a high white blood cell count usually indicate?", "Often an infection or inflammation, but also stress, some medicines or, rarely, a blood disorder; a doctor interprets it in context."),
    ("What is depreciation in accounting?", "Allocating the cost of a long-lived asset over its useful life as an expense, for example straight-line: (cost - salvage) / years."),
    ("What is the accounting equation?", "Assets = Liabilities + Equity."),
    ("What is the difference between cash and accrual accounting?", "Cash accounting records revenue and expenses when money moves; accrual accounting records them when they are earned or incurred."),
    ("What is working capital?", "Current assets minus current liabilities, a measure of short-term liquidity."),
    ("What is cognitive behavioral therapy?", "A structured psychotherapy that helps people identify and change unhelpful thoughts and behaviors; it is effective for depression and anxiety."),
    ("What is informed consent in medicine?", "A patient's voluntary agreement to a treatment after being told its nature, risks, benefits and alternatives."),
    ("What is negligence in tort law?", "Failure to take reasonable care that causes foreseeable harm; the plaintiff must show duty, breach, causation and damages."),
    ("What does an auditor's unqualified opinion mean?", "That the financial statements present fairly, in all material respects, the company's position in accordance with the applicable framework."),
]

GENERAL = [
    ("Give me three ideas for a rainy Sunday afternoon.", "1. Bake bread or cookies. 2. Start a jigsaw puzzle. 3. Watch a classic film with friends."),
    ("Write a haiku about autumn.", "Red leaves drift and fall\nthe old path hides under gold\nwind hums through bare trees"),
    ("Classify each as fruit or vegetable: apple, carrot, banana, spinach.", "Fruit: apple, banana. Vegetable: carrot, spinach."),
    ("Translate 'good morning' into Spanish and French.", "Spanish: buenos días. French: bonjour."),
    ("Suggest a name for a small coffee shop by the sea.", "How about 'The Salty Bean'?"),
    ("What is a good way to start learning to cook?", "Pick five simple recipes you like, cook each a few times, and learn basic knife skills along the way."),
    ("Write a short thank-you note to a colleague who helped me move.", "Thank you so much for giving up your Saturday to help me move. I could not have done it without you; dinner is on me!"),
    ("List four popular board games.", "Chess, Scrabble, Monopoly and Catan."),
    ("Is this review positive or negative? 'The food was cold and the waiter ignored us.'", "Negative."),
    ("Summarize in one sentence: The meeting was moved from Tuesday to Thursday because the manager is traveling; the agenda stays the same.", "The meeting moves to Thursday with the same agenda because the manager is traveling."),
]
